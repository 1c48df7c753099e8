"""Element-wise activations on flat (m,) arrays: ReLU, LeakyReLU, ELU, SoftPlus.

Modules pass contiguous arrays raveled to 1-D, so one compiled kernel serves every shape.
Comparisons are written so that NaN input gives NaN output, never a silent 0. exp, expm1
and log1p are the vectorizable ones of _vmath.py.
"""
import numpy as np
from numba import prange

from ._config import PARALLEL_MIN_EXP, PARALLEL_MIN_STREAMING
from ._jit import kernel
from ._vmath import vexp_nonpositive, vexpm1_wide, vsoftplus


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def relu_update_output(input, output):
    """input (m,); output [OUT] (m,) = max(input, 0), NaN kept."""
    zero = input.dtype.type(0)
    for k in prange(input.shape[0]):
        x = input[k]
        output[k] = zero if x < zero else x


@relu_update_output.numpy_twin
def relu_update_output_numpy(input, output):
    np.maximum(input, 0, out=output)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def relu_update_grad_input(input, grad_output, grad_input):
    """input (m,); grad_output (m,); grad_input [OUT] (m,) = grad_output where input > 0."""
    zero = input.dtype.type(0)
    for k in prange(input.shape[0]):
        grad_input[k] = grad_output[k] if input[k] > zero else zero


@relu_update_grad_input.numpy_twin
def relu_update_grad_input_numpy(input, grad_output, grad_input):
    np.multiply(grad_output, input > 0, out=grad_input)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def leaky_relu_update_output(input, output, slope):
    """input (m,); output [OUT] (m,) = input if input > 0 else slope * input."""
    zero = input.dtype.type(0)
    for k in prange(input.shape[0]):
        x = input[k]
        output[k] = x * slope if x < zero else x


@leaky_relu_update_output.numpy_twin
def leaky_relu_update_output_numpy(input, output, slope):
    np.multiply(input, np.where(input < 0, slope, input.dtype.type(1)), out=output)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def leaky_relu_update_grad_input(input, grad_output, grad_input, slope):
    """input (m,); grad_output (m,); grad_input [OUT] (m,) = grad_output where input > 0,
    slope * grad_output elsewhere (the gradient at exactly 0 is the slope)."""
    zero = input.dtype.type(0)
    for k in prange(input.shape[0]):
        g = grad_output[k]
        grad_input[k] = g if input[k] > zero else g * slope


@leaky_relu_update_grad_input.numpy_twin
def leaky_relu_update_grad_input_numpy(input, grad_output, grad_input, slope):
    np.multiply(grad_output, np.where(input > 0, input.dtype.type(1), slope), out=grad_input)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def elu_update_output(input, output, alpha):
    """input (m,); output [OUT] (m,) = input if input > 0 else alpha * (exp(input) - 1)."""
    zero = input.dtype.type(0)
    alpha64 = np.float64(alpha)
    for k in prange(input.shape[0]):
        x = input[k]
        # wide inside and rounded once, so float32 results are within torch's error
        negative = input.dtype.type(alpha64 * vexpm1_wide(x))
        output[k] = x if x > zero else negative


@elu_update_output.numpy_twin
def elu_update_output_numpy(input, output, alpha):
    negative = alpha * np.expm1(np.minimum(input, 0))
    np.copyto(output, np.where(input > 0, input, negative))


@kernel(parallel_min=PARALLEL_MIN_EXP)
def elu_update_grad_input(input, grad_output, grad_input, alpha):
    """input (m,); grad_output (m,); grad_input [OUT] (m,) = grad_output where input > 0,
    grad_output * alpha * exp(input) elsewhere."""
    zero = input.dtype.type(0)
    for k in prange(input.shape[0]):
        x = input[k]
        g = grad_output[k]
        grad_input[k] = g if x > zero else g * alpha * vexp_nonpositive(x)


@elu_update_grad_input.numpy_twin
def elu_update_grad_input_numpy(input, grad_output, grad_input, alpha):
    slope = np.where(input > 0, input.dtype.type(1), alpha * np.exp(np.minimum(input, 0)))
    np.multiply(grad_output, slope, out=grad_input)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def softplus_update_output(input, output):
    """input (m,); output [OUT] (m,) = log(1 + exp(input)), computed as
    max(x, 0) + log1p(exp(-|x|)) so it neither overflows nor loses small values."""
    for k in prange(input.shape[0]):
        output[k] = vsoftplus(input[k])


@softplus_update_output.numpy_twin
def softplus_update_output_numpy(input, output):
    np.add(np.maximum(input, 0), np.log1p(np.exp(-np.abs(input))), out=output)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def softplus_update_grad_input(input, grad_output, grad_input):
    """input (m,); grad_output (m,); grad_input [OUT] (m,) = grad_output * sigmoid(input),
    with exp taken of -|x| only."""
    one = input.dtype.type(1)
    zero = input.dtype.type(0)
    for k in prange(input.shape[0]):
        x = input[k]
        e = vexp_nonpositive(-abs(x))
        sigmoid = one / (one + e) if x >= zero else e / (one + e)
        grad_input[k] = grad_output[k] * sigmoid


@softplus_update_grad_input.numpy_twin
def softplus_update_grad_input_numpy(input, grad_output, grad_input):
    e = np.exp(-np.abs(input))
    sigmoid = np.where(input >= 0, 1 / (1 + e), e / (1 + e))
    np.multiply(grad_output, sigmoid, out=grad_input)
