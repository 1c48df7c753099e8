"""SoftMax and LogSoftMax over axis 1 of a (batch, features) array.

Rows are independent, so the parallel variant splits rows among threads; every row is
shifted by its maximum so exp never overflows. exp is ``vexp_nonpositive`` (see _vmath.py),
which vectorizes. A row of all -inf has no maximum to shift by
and gives NaN, as in torch.
"""
import numpy as np
from numba import prange

from ._config import PARALLEL_MIN_EXP, PARALLEL_MIN_STREAMING
from ._jit import kernel
from ._vmath import (SHORT_ROW_MASK, counted_exp_sum_storing_shifted,
                     counted_exp_sum_storing_shifted_in_blocks, inlined, log_of_counted_total,
                     row_max_of, short_rows, vexp_nonpositive, wide_vectors)

# The row functions are inlined into each call: a kernel calls them with c & SHORT_ROW_MASK for
# short float32 rows and with c otherwise, and each call gets loops of its own (_vmath.py).


@inlined
def _softmax_row(row, out, m):
    """out[:m] = softmax of row[:m]."""
    top = row_max_of(row, m)
    total = row.dtype.type(0)
    for j in range(m):
        e = vexp_nonpositive(row[j] - top)
        out[j] = e
        total += e
    factor = row.dtype.type(1) / total
    for j in range(m):
        out[j] *= factor


@kernel(parallel_min=PARALLEL_MIN_EXP)
def softmax_update_output(input, output):
    """input (n, c); output [OUT] (n, c) = exp(input - max) / sum(exp(input - max)) per row,
    with one exp per element (written, then rescaled)."""
    n, c = input.shape
    short = short_rows(input)
    for i in prange(n):
        wide_vectors()
        if short:
            _softmax_row(input[i], output[i], c & SHORT_ROW_MASK)
        else:
            _softmax_row(input[i], output[i], c)


@softmax_update_output.numpy_twin
@np.errstate(invalid="ignore")
def softmax_update_output_numpy(input, output):
    np.subtract(input, input.max(axis=1, keepdims=True), out=output)
    np.exp(output, out=output)
    output /= output.sum(axis=1, keepdims=True)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def softmax_update_grad_input(output, grad_output, grad_input):
    """output (n, c) saved by forward; grad_output (n, c); grad_input [OUT] (n, c)
    = output * (grad_output - sum(grad_output * output)) per row."""
    n, c = output.shape
    for i in prange(n):
        dot = output.dtype.type(0)
        for j in range(c):
            dot += grad_output[i, j] * output[i, j]
        for j in range(c):
            grad_input[i, j] = output[i, j] * (grad_output[i, j] - dot)


@softmax_update_grad_input.numpy_twin
def softmax_update_grad_input_numpy(output, grad_output, grad_input):
    dot = np.einsum("ij,ij->i", grad_output, output)[:, None]
    np.subtract(grad_output, dot, out=grad_input)
    grad_input *= output


@inlined
def _subtract_log_total(out, ties, rest, m):
    """out[:m] -= log(ties + rest), log-softmax's second subtraction, in a loop of its own
    (see _log_softmax_row)."""
    log_total = out.dtype.type(log_of_counted_total(ties, rest))
    for j in range(m):
        out[j] = out[j] - log_total


@inlined
def _log_softmax_row(row, out, m):
    """out[:m] = row[:m] - max - log(sum(exp(row[:m] - max))). The sum's pass stores x - max,
    and (x - max) - log(sum) is then computed in out, on the row in L1, instead of a third pass
    reading the row (4096x1024 float32 1196-1262 -> 1038 us, docs/performance.md). The two
    subtractions are in two loops, in that order: written as one expression under the
    kernels' "reassoc" flag, LLVM may take x - (max + log(sum)), which rounds log(sum) to
    max's precision (a relative error of 0.3 in float32 at logits of 1e4)."""
    top = row_max_of(row, m)
    ties, rest = counted_exp_sum_storing_shifted(row, out, top, m)
    _subtract_log_total(out, ties, rest, m)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def log_softmax_long_rows_update_output(input, output):
    """log_softmax_update_output, run in place of its parallel variant for rows of LONG_ROW
    or more columns: 512-bit vectors (parallel variant), and the exps' loop in whole blocks
    of 64 (_vmath.py, counted_exp_sum_storing_shifted_in_blocks). LLVM's default 256-bit
    vectors took rows of 10-300 columns faster; through LogSoftMax, float32, these took
    512x512 from 75.6-78.6 to 59.5-61.6 us, 256x1000 from 70.3-73.1 to 59.2-61.9
    (docs/performance.md)."""
    n, c = input.shape
    for i in prange(n):
        wide_vectors()
        row, out = input[i], output[i]
        top = row_max_of(row, c)
        ties, rest = counted_exp_sum_storing_shifted_in_blocks(row, out, top, c)
        _subtract_log_total(out, ties, rest, c)


@kernel(parallel_min=PARALLEL_MIN_EXP, long_rows=log_softmax_long_rows_update_output)
def log_softmax_update_output(input, output):
    """input (n, c); output [OUT] (n, c) = input - max - log(sum(exp(input - max))) per row
    (the sum: _vmath.py, counted_exp_sum)."""
    n, c = input.shape
    short = short_rows(input)
    for i in prange(n):
        if short:
            _log_softmax_row(input[i], output[i], c & SHORT_ROW_MASK)
        else:
            _log_softmax_row(input[i], output[i], c)


@log_softmax_update_output.numpy_twin
@np.errstate(invalid="ignore")
def log_softmax_update_output_numpy(input, output):
    row_max = input.max(axis=1, keepdims=True)
    np.subtract(input, row_max, out=output)
    np.exp(output, out=output)
    log_total = np.log(output.sum(axis=1, keepdims=True))
    np.subtract(input, row_max, out=output)
    output -= log_total


log_softmax_long_rows_update_output.numpy_twin(log_softmax_update_output.numpy)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def log_softmax_update_grad_input(output, grad_output, grad_input):
    """output (n, c) saved by forward; grad_output (n, c); grad_input [OUT] (n, c)
    = grad_output - exp(output) * sum(grad_output) per row."""
    n, c = output.shape
    for i in prange(n):
        total = output.dtype.type(0)
        for j in range(c):
            total += grad_output[i, j]
        for j in range(c):
            grad_input[i, j] = grad_output[i, j] - vexp_nonpositive(output[i, j]) * total


@log_softmax_update_grad_input.numpy_twin
def log_softmax_update_grad_input_numpy(output, grad_output, grad_input):
    total = grad_output.sum(axis=1, keepdims=True)
    np.exp(output, out=grad_input)
    grad_input *= -total
    grad_input += grad_output
