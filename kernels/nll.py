"""Negative log-likelihood in its three forms, each with integer labels or dense targets.

- probability form (the seed's ClassNLLCriterion): input p from SoftMax, clipped to
  [eps, 1 - eps]; loss = -sum(target * log(p)) / n, gradient -target / clip(p) / n.
- log form (PyTorch's NLLLoss): input log p from LogSoftMax; loss = -sum(target * log p) / n,
  gradient -target / n.
- cross-entropy (Torch7's CrossEntropyCriterion): raw scores x, LogSoftMax fused in:
  loss = sum(target * (logsumexp(x) - x)) / n, gradient (sum(target) * softmax(x) - target) / n.

Forward kernels write one loss per row into ``row_loss`` [BUFFER] and return the mean: the rows
run in parallel and the sum is serial, so the loss is the same whatever the thread count.
Dense targets skip zero entries, so a -inf log-probability where the target is 0 costs nothing.
"""
import numpy as np
from numba import prange

from ._config import PARALLEL_MIN_EXP, PARALLEL_MIN_STREAMING
from ._jit import jit, kernel
from ._vmath import nll_term, row_max, vexp
from .softmax import row_softmax_into


def _mean(row_loss):
    return row_loss.sum() / row_loss.dtype.type(max(row_loss.shape[0], 1))


_mean_jit = jit(_mean)


# ---------------------------------------------------------------- probability form, labels
@kernel(size_arg=1)
def nll_prob_labels_update_output(input, labels, row_loss, eps):
    """input (n, c) probabilities; labels (n,) int64 in [0, c); row_loss [BUFFER] (n,);
    eps clip bound. Returns the mean loss."""
    one = input.dtype.type(1)
    for i in prange(input.shape[0]):
        p = min(max(input[i, labels[i]], eps), one - eps)
        row_loss[i] = -np.log(p)
    return _mean_jit(row_loss)


@nll_prob_labels_update_output.numpy_twin
def nll_prob_labels_update_output_numpy(input, labels, row_loss, eps):
    picked = input[np.arange(input.shape[0]), labels]
    np.negative(np.log(np.clip(picked, eps, 1 - eps)), out=row_loss)
    return _mean(row_loss)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def nll_prob_labels_update_grad_input(input, labels, grad_input, eps):
    """input (n, c) probabilities; labels (n,); grad_input [OUT] (n, c); eps clip bound."""
    n, c = input.shape
    one = input.dtype.type(1)
    scale = -one / input.dtype.type(n)
    for i in prange(n):
        for j in range(c):
            grad_input[i, j] = 0
        p = min(max(input[i, labels[i]], eps), one - eps)
        grad_input[i, labels[i]] = scale / p


@nll_prob_labels_update_grad_input.numpy_twin
def nll_prob_labels_update_grad_input_numpy(input, labels, grad_input, eps):
    n = input.shape[0]
    rows = np.arange(n)
    grad_input.fill(0)
    grad_input[rows, labels] = -1 / np.clip(input[rows, labels], eps, 1 - eps) / n


# ---------------------------------------------------------------- probability form, dense
@kernel()
def nll_prob_update_output(input, target, row_loss, eps):
    """input (n, c) probabilities; target (n, c); row_loss [BUFFER] (n,); eps clip bound.
    Returns the mean loss."""
    n, c = input.shape
    one = input.dtype.type(1)
    for i in prange(n):
        total = input.dtype.type(0)
        for j in range(c):
            if target[i, j] != 0:
                total += target[i, j] * np.log(min(max(input[i, j], eps), one - eps))
        row_loss[i] = -total
    return _mean_jit(row_loss)


@nll_prob_update_output.numpy_twin
def nll_prob_update_output_numpy(input, target, row_loss, eps):
    terms = target * np.log(np.clip(input, eps, 1 - eps))
    np.negative(terms.sum(axis=1), out=row_loss)
    return _mean(row_loss)


@kernel()
def nll_prob_update_grad_input(input, target, grad_input, eps):
    """input (n, c) probabilities; target (n, c); grad_input [OUT] (n, c); eps clip bound."""
    n, c = input.shape
    one = input.dtype.type(1)
    scale = -one / input.dtype.type(n)
    for i in prange(n):
        for j in range(c):
            grad_input[i, j] = scale * target[i, j] / min(max(input[i, j], eps), one - eps)


@nll_prob_update_grad_input.numpy_twin
def nll_prob_update_grad_input_numpy(input, target, grad_input, eps):
    np.divide(target, np.clip(input, eps, 1 - eps), out=grad_input)
    grad_input *= -1 / max(input.shape[0], 1)


# ---------------------------------------------------------------- log form, labels
@kernel(size_arg=1)
def nll_log_labels_update_output(input, labels, row_loss):
    """input (n, c) log-probabilities; labels (n,) int64 in [0, c); row_loss [BUFFER] (n,).
    Returns the mean loss."""
    for i in prange(input.shape[0]):
        row_loss[i] = -input[i, labels[i]]
    return _mean_jit(row_loss)


@nll_log_labels_update_output.numpy_twin
def nll_log_labels_update_output_numpy(input, labels, row_loss):
    np.negative(input[np.arange(input.shape[0]), labels], out=row_loss)
    return _mean(row_loss)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def nll_log_labels_update_grad_input(input, labels, grad_input):
    """input (n, c); labels (n,); grad_input [OUT] (n, c) = -onehot(labels) / n."""
    n, c = input.shape
    scale = -input.dtype.type(1) / input.dtype.type(n)
    for i in prange(n):
        for j in range(c):
            grad_input[i, j] = 0
        grad_input[i, labels[i]] = scale


@nll_log_labels_update_grad_input.numpy_twin
def nll_log_labels_update_grad_input_numpy(input, labels, grad_input):
    grad_input.fill(0)
    grad_input[np.arange(input.shape[0]), labels] = -1 / max(input.shape[0], 1)


# ---------------------------------------------------------------- log form, dense
@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def nll_log_update_output(input, target, row_loss):
    """input (n, c) log-probabilities; target (n, c); row_loss [BUFFER] (n,).
    Returns the mean loss."""
    n, c = input.shape
    for i in prange(n):
        total = input.dtype.type(0)
        for j in range(c):
            if target[i, j] != 0:
                total += target[i, j] * input[i, j]
        row_loss[i] = -total
    return _mean_jit(row_loss)


@nll_log_update_output.numpy_twin
@np.errstate(invalid="ignore")
def nll_log_update_output_numpy(input, target, row_loss):
    terms = np.where(target != 0, target * input, 0)
    np.negative(terms.sum(axis=1), out=row_loss)
    return _mean(row_loss)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def nll_log_update_grad_input(input, target, grad_input):
    """input (n, c); target (n, c); grad_input [OUT] (n, c) = -target / n."""
    n, c = input.shape
    scale = -input.dtype.type(1) / input.dtype.type(n)
    for i in prange(n):
        for j in range(c):
            grad_input[i, j] = scale * target[i, j]


@nll_log_update_grad_input.numpy_twin
def nll_log_update_grad_input_numpy(input, target, grad_input):
    np.multiply(target, -1 / max(input.shape[0], 1), out=grad_input)


# ---------------------------------------------------------------- cross-entropy
# logsumexp(x) = top + log_total, kept as two numbers: a loss term is taken as
# (top - x) + log_total, see nll_term.
@jit
def _row_top_log_total(x, i):
    """(max of row i, log of sum(exp(row - max))); the sum and its log in float64, so a
    float32 loss is rounded once, at the end."""
    top = row_max(x, i)
    total = 0.0
    for j in range(x.shape[1]):
        total += np.float64(vexp(x[i, j] - top))
    return top, np.log(total)


def _top_log_total_numpy(x):
    top = x.max(axis=1, keepdims=True)
    return top, np.log(np.exp(x - top).sum(axis=1, keepdims=True))


def _log_softmax_numpy(x):
    top, log_total = _top_log_total_numpy(x)
    return (x - top) - log_total


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_labels_update_output(input, labels, row_loss):
    """input (n, c) raw scores; labels (n,) int64 in [0, c); row_loss [BUFFER] (n,).
    Returns the mean of logsumexp(x) - x[label]."""
    for i in prange(input.shape[0]):
        top, log_total = _row_top_log_total(input, i)
        row_loss[i] = nll_term(np.float64(input[i, labels[i]]), np.float64(top), log_total)
    return _mean_jit(row_loss)


@cross_entropy_labels_update_output.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_labels_update_output_numpy(input, labels, row_loss):
    top, log_total = _top_log_total_numpy(input)
    picked = input[np.arange(input.shape[0]), labels]
    np.add(top[:, 0] - picked, log_total[:, 0], out=row_loss)
    return _mean(row_loss)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_labels_update_grad_input(input, labels, grad_input):
    """input (n, c) raw scores; labels (n,); grad_input [OUT] (n, c)
    = (softmax(input) - onehot(labels)) / n."""
    n = input.shape[0]
    inv_n = input.dtype.type(1) / input.dtype.type(n)
    for i in prange(n):
        row_softmax_into(input, i, grad_input, inv_n)
        grad_input[i, labels[i]] -= inv_n


@cross_entropy_labels_update_grad_input.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_labels_update_grad_input_numpy(input, labels, grad_input):
    n = input.shape[0]
    np.exp(_log_softmax_numpy(input), out=grad_input)
    grad_input[np.arange(n), labels] -= 1
    grad_input /= n


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_update_output(input, target, row_loss):
    """input (n, c) raw scores; target (n, c); row_loss [BUFFER] (n,).
    Returns the mean of sum(target * (logsumexp(x) - x))."""
    n, c = input.shape
    for i in prange(n):
        top, log_total = _row_top_log_total(input, i)
        top64, total = np.float64(top), 0.0
        for j in range(c):
            if target[i, j] != 0:
                total += target[i, j] * nll_term(np.float64(input[i, j]), top64, log_total)
        row_loss[i] = total
    return _mean_jit(row_loss)


@cross_entropy_update_output.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_update_output_numpy(input, target, row_loss):
    terms = np.where(target != 0, -target * _log_softmax_numpy(input), 0)
    np.sum(terms, axis=1, out=row_loss)
    return _mean(row_loss)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_update_grad_input(input, target, grad_input):
    """input (n, c) raw scores; target (n, c); grad_input [OUT] (n, c)
    = (sum(target) * softmax(input) - target) / n per row."""
    n, c = input.shape
    inv_n = input.dtype.type(1) / input.dtype.type(n)
    for i in prange(n):
        mass = input.dtype.type(0)
        for j in range(c):
            mass += target[i, j]
        row_softmax_into(input, i, grad_input, mass * inv_n)
        for j in range(c):
            grad_input[i, j] -= target[i, j] * inv_n


@cross_entropy_update_grad_input.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_update_grad_input_numpy(input, target, grad_input):
    mass = target.sum(axis=1, keepdims=True)
    np.exp(_log_softmax_numpy(input), out=grad_input)
    grad_input *= mass
    grad_input -= target
    grad_input /= max(input.shape[0], 1)
