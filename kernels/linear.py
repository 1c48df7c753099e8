"""Linear: BLAS does the matrix products (a hand-written matmul would be slower); kernels do
the parts BLAS has no call for, the bias add and the bias gradient. The weight gradient is
added in place by one GEMM call where NumPy's OpenBLAS can be called directly (_blas.py)."""
import numpy as np
from numba import prange

from . import _blas
from ._config import PARALLEL_MIN_REDUCTION, PARALLEL_MIN_STREAMING
from ._dispatch import get_backend
from ._jit import add_partials, add_rows, composite, kernel, n_row_chunks, row_chunk, zeroed


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def bias_add(output, bias):
    """output [OUT] (n, c) += bias (c,) on every row."""
    n, c = output.shape
    for i in prange(n):
        for j in range(c):
            output[i, j] += bias[j]


@bias_add.numpy_twin
def bias_add_numpy(output, bias):
    output += bias


@kernel(parallel_min=PARALLEL_MIN_REDUCTION)
def bias_acc_grad(grad_output, grad_bias):
    """grad_bias [OUT] (c,) += the column sums of grad_output (n, c)."""
    n, c = grad_output.shape
    chunks = n_row_chunks(n)
    partial = zeroed(chunks, c, grad_bias)
    for chunk in prange(chunks):
        start, stop = row_chunk(chunk, n)
        add_rows(grad_output, start, stop, partial[chunk])
    add_partials(partial, grad_bias)


@bias_acc_grad.numpy_twin
def bias_acc_grad_numpy(grad_output, grad_bias):
    grad_bias += grad_output.sum(axis=0)


@composite
def linear_update_output(input, output, weight, bias):
    """input (n, i); output [OUT] (n, o) = input @ weight.T + bias; weight (o, i); bias (o,)."""
    np.matmul(input, weight.T, out=output)
    bias_add.numba(output, bias)


@linear_update_output.numpy_twin
def linear_update_output_numpy(input, output, weight, bias):
    np.matmul(input, weight.T, out=output)
    output += bias


def linear_acc_grad_parameters_in_place(input, grad_output, grad_weight, grad_bias):
    """linear_acc_grad_parameters without a buffer, on the Numba backend: grad_weight [OUT]
    += grad_output.T @ input added by one GEMM call (_blas.add_product), grad_bias [OUT] +=
    column sums. Returns False, changing nothing, where that call cannot be made (small
    products, arrays it cannot take, no OpenBLAS to call) or on the NumPy backend; the caller
    then takes linear_acc_grad_parameters or linear_first_grad_parameters."""
    if get_backend() != "numba" or not _blas.add_product(grad_weight, grad_output, input,
                                                         transpose_a=True):
        return False
    bias_acc_grad.numba(grad_output, grad_bias)
    return True


@composite
def linear_acc_grad_parameters(input, grad_output, grad_weight, grad_bias, weight_buffer):
    """input (n, i); grad_output (n, o); grad_weight [OUT] (o, i) += grad_output.T @ input;
    grad_bias [OUT] (o,) += column sums of grad_output; weight_buffer [BUFFER] (o, i)."""
    np.matmul(grad_output.T, input, out=weight_buffer)
    grad_weight += weight_buffer
    bias_acc_grad.numba(grad_output, grad_bias)


@linear_acc_grad_parameters.numpy_twin
def linear_acc_grad_parameters_numpy(input, grad_output, grad_weight, grad_bias, weight_buffer):
    np.matmul(grad_output.T, input, out=weight_buffer)
    grad_weight += weight_buffer
    grad_bias += grad_output.sum(axis=0)


@composite
def linear_first_grad_parameters(input, grad_output, grad_weight, grad_bias):
    """linear_acc_grad_parameters for a grad_weight that is all zeros (the first accumulation
    after zeroGradParameters): grad_weight [OUT] (o, i) = grad_output.T @ input, written by the
    product itself, without a buffer and an add; grad_bias [OUT] (o,) += column sums."""
    np.matmul(grad_output.T, input, out=grad_weight)
    bias_acc_grad.numba(grad_output, grad_bias)


@linear_first_grad_parameters.numpy_twin
def linear_first_grad_parameters_numpy(input, grad_output, grad_weight, grad_bias):
    np.matmul(grad_output.T, input, out=grad_weight)
    grad_bias += grad_output.sum(axis=0)
