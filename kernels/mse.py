"""Mean squared error summed over features and averaged over the batch (the seed's MSECriterion):
loss = sum((input - target)**2) / n, gradient 2 * (input - target) / n."""
import numpy as np
from numba import prange

from ._config import PARALLEL_MIN_STREAMING
from ._jit import kernel
from .nll import _mean, _mean_jit


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def mse_update_output(input, target, row_loss):
    """input (n, c); target (n, c); row_loss [BUFFER] (n,). Returns the loss. In float32 a
    square beyond the range is inf, as the math says, never a wrapped value."""
    n, c = input.shape
    for i in prange(n):
        total = input.dtype.type(0)
        for j in range(c):
            d = input[i, j] - target[i, j]
            total += d * d
        row_loss[i] = total
    return _mean_jit(row_loss)


@mse_update_output.numpy_twin
def mse_update_output_numpy(input, target, row_loss):
    d = input - target
    np.einsum("ij,ij->i", d, d, out=row_loss)
    return _mean(row_loss)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def mse_update_grad_input(input, target, grad_input):
    """input (n, c); target (n, c); grad_input [OUT] (n, c) = 2 * (input - target) / n."""
    n, c = input.shape
    scale = input.dtype.type(2) / input.dtype.type(n)
    for i in prange(n):
        for j in range(c):
            grad_input[i, j] = (input[i, j] - target[i, j]) * scale


@mse_update_grad_input.numpy_twin
def mse_update_grad_input_numpy(input, target, grad_input):
    np.subtract(input, target, out=grad_input)
    grad_input *= 2 / max(input.shape[0], 1)
