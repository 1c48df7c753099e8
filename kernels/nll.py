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
from ._jit import jit, kernel, n_row_chunks, row_chunk
from ._vmath import nll_term, row_max, vexp_nonpositive


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
    n = input.shape[0]
    one = input.dtype.type(1)
    scale = -one / input.dtype.type(n)
    for chunk in prange(n_row_chunks(n)):
        start, stop = row_chunk(chunk, n)
        grad_input[start:stop] = 0  # one memset per task: 15% faster than one per row
        for i in range(start, stop):
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
    n = input.shape[0]
    scale = -input.dtype.type(1) / input.dtype.type(n)
    for chunk in prange(n_row_chunks(n)):
        start, stop = row_chunk(chunk, n)
        grad_input[start:stop] = 0
        for i in range(start, stop):
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
# Forward keeps each row's maximum and sum(exp(x - max)) ([BUFFER]s row_top (n,) of the
# input's dtype, row_total (n,) float64); backward takes them, so the gradient costs one pass
# over the row (exp, scale, write) instead of three (maximum, exp and sum, rescale), as
# Torch7's CrossEntropyCriterion reuses its LogSoftMax output.
# logsumexp(x) = top + log(total), kept as two numbers: a loss term is taken as
# (top - x) + log(total), see nll_term.
@jit
def _row_top_total(x, i):
    """(max of row i, sum(exp(row - max))), the sum in float64, so a float32 loss is
    rounded once, at the end."""
    top = row_max(x, i)
    total = 0.0
    for j in range(x.shape[1]):
        total += np.float64(vexp_nonpositive(x[i, j] - top))
    return top, total


def _top_total_numpy(x, row_top, row_total):
    """Fills row_top and row_total; returns top (n, 1) and log_total (n, 1)."""
    x.max(axis=1, out=row_top)
    top = row_top[:, None]
    np.sum(np.exp(x - top), axis=1, out=row_total)
    return top, np.log(row_total)[:, None]


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_labels_update_output(input, labels, row_loss, row_top, row_total):
    """input (n, c) raw scores; labels (n,) int64 in [0, c); row_loss, row_top,
    row_total [BUFFER] (n,) (see above). Returns the mean of logsumexp(x) - x[label]."""
    for i in prange(input.shape[0]):
        top, total = _row_top_total(input, i)
        row_top[i], row_total[i] = top, total
        row_loss[i] = nll_term(np.float64(input[i, labels[i]]), np.float64(top), np.log(total))
    return _mean_jit(row_loss)


@cross_entropy_labels_update_output.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_labels_update_output_numpy(input, labels, row_loss, row_top, row_total):
    top, log_total = _top_total_numpy(input, row_top, row_total)
    picked = input[np.arange(input.shape[0]), labels]
    np.add(top[:, 0] - picked, log_total[:, 0], out=row_loss)
    return _mean(row_loss)


def _stale_tolerance(c, dtype_eps):
    """Relative tolerance between row_total and a sum of c exps taken again in the input's
    dtype: twice the rounding bound of a sum split over LLVM's 64 running partial sums
    (float32, c = 1000: 5.6e-6). A kept total off by less than this scales the gradient row
    by less than this."""
    return (c / 32 + 16) * dtype_eps


_stale_tolerance_jit = jit(_stale_tolerance)


@jit
def _statistics_stale(check, total, tolerance):
    """True when check, this input's sum of exp(x - top), is not row_total to within the
    tolerance, or either is NaN: the row statistics came from other values (the input was
    changed in place since its forward)."""
    return not (abs(np.float64(check) - total) <= tolerance * total)


@np.errstate(invalid="ignore", over="ignore")
def _scaled_softmax_numpy(x, row_top, row_total, scale, out):
    """out = scale * softmax(x) from the kept statistics, scale (n, 1) or a number. Returns how
    many rows' statistics do not match x, checked on the exps computed for out (see
    _statistics_stale)."""
    np.subtract(x, row_top[:, None], out=out)
    np.exp(out, out=out)
    check = out.sum(axis=1, dtype=np.float64)
    tolerance = _stale_tolerance(x.shape[1], np.finfo(x.dtype).eps)
    out *= (scale / row_total[:, None]).astype(x.dtype)
    return int(np.count_nonzero(~(np.abs(check - row_total) <= tolerance * row_total)))


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_labels_update_grad_input(input, labels, row_top, row_total, grad_input):
    """input (n, c) raw scores; labels (n,); row_top, row_total (n,) from the forward of this
    input; grad_input [OUT] (n, c) = (softmax(input) - onehot(labels)) / n. Returns how many
    rows' statistics do not match input (see _statistics_stale): 0, or run forward again."""
    n, c = input.shape
    inv_n = input.dtype.type(1) / input.dtype.type(n)
    tolerance = _stale_tolerance_jit(c, np.finfo(input.dtype).eps)
    stale = 0
    for i in prange(n):
        top, total = row_top[i], row_total[i]
        factor = input.dtype.type(np.float64(inv_n) / total)
        check = input.dtype.type(0)  # in the input's dtype: a float64 sum cost 25% more time
        for j in range(c):
            e = vexp_nonpositive(input[i, j] - top)
            check += e
            grad_input[i, j] = e * factor
        grad_input[i, labels[i]] -= inv_n
        if _statistics_stale(check, total, tolerance):
            stale += 1
    return stale


@cross_entropy_labels_update_grad_input.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_labels_update_grad_input_numpy(input, labels, row_top, row_total, grad_input):
    n = input.shape[0]
    inv_n = input.dtype.type(1) / input.dtype.type(max(n, 1))
    stale = _scaled_softmax_numpy(input, row_top, row_total, np.float64(inv_n), grad_input)
    grad_input[np.arange(n), labels] -= inv_n
    return stale


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_update_output(input, target, row_loss, row_top, row_total):
    """input (n, c) raw scores; target (n, c); row_loss, row_top, row_total [BUFFER] (n,).
    Returns the mean of sum(target * (logsumexp(x) - x))."""
    n, c = input.shape
    for i in prange(n):
        top, total = _row_top_total(input, i)
        row_top[i], row_total[i] = top, total
        top64, log_total, loss = np.float64(top), np.log(total), 0.0
        for j in range(c):
            if target[i, j] != 0:
                loss += target[i, j] * nll_term(np.float64(input[i, j]), top64, log_total)
        row_loss[i] = loss
    return _mean_jit(row_loss)


@cross_entropy_update_output.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_update_output_numpy(input, target, row_loss, row_top, row_total):
    top, log_total = _top_total_numpy(input, row_top, row_total)
    terms = np.where(target != 0, -target * ((input - top) - log_total), 0)
    np.sum(terms, axis=1, out=row_loss)
    return _mean(row_loss)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def cross_entropy_update_grad_input(input, target, row_top, row_total, grad_input):
    """input (n, c) raw scores; target (n, c); row_top, row_total (n,) from the forward of
    this input; grad_input [OUT] (n, c) = (sum(target) * softmax(input) - target) / n per row.
    Returns how many rows' statistics do not match input, as the labels form."""
    n, c = input.shape
    inv_n = input.dtype.type(1) / input.dtype.type(n)
    tolerance = _stale_tolerance_jit(c, np.finfo(input.dtype).eps)
    stale = 0
    for i in prange(n):
        mass = input.dtype.type(0)
        for j in range(c):
            mass += target[i, j]
        top, total = row_top[i], row_total[i]
        factor = input.dtype.type(np.float64(mass * inv_n) / total)
        check = input.dtype.type(0)
        for j in range(c):
            e = vexp_nonpositive(input[i, j] - top)
            check += e
            grad_input[i, j] = e * factor - target[i, j] * inv_n
        if _statistics_stale(check, total, tolerance):
            stale += 1
    return stale


@cross_entropy_update_grad_input.numpy_twin
@np.errstate(invalid="ignore")
def cross_entropy_update_grad_input_numpy(input, target, row_top, row_total, grad_input):
    inv_n = input.dtype.type(1) / input.dtype.type(max(input.shape[0], 1))
    mass = target.sum(axis=1, keepdims=True)
    stale = _scaled_softmax_numpy(input, row_top, row_total, mass * np.float64(inv_n), grad_input)
    grad_input -= target * inv_n
    return stale
