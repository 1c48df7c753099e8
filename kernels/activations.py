"""Element-wise activations: ReLU, LeakyReLU, ELU, SoftPlus.

The arrays of a call are C-contiguous, of one shape, any number of dimensions. Each kernel
runs over 1-D views of them, made inline by reshape (Numba's parallel pass takes an array
returned by a jitted helper for a new one and dropped a loop that wrote only to it; reshape
refuses a non-contiguous array rather than copy it). Taking arrays as they come rather than
raveled by the module costs a compile per number of dimensions (2 for Linear layers, 4 after
Conv2d) and saves the module two ravel calls: 0.12 us of a 2 us LeakyReLU forward at 64x10.
Comparisons are written so that NaN input gives NaN output, never a silent 0. exp, expm1
and log1p are the vectorizable ones of _vmath.py.
"""
import numpy as np
from numba import prange

from ._config import PARALLEL_MIN_EXP, PARALLEL_MIN_STREAMING
from ._jit import kernel
from ._vmath import vexp_nonpositive, vexpm1_wide, vsoftplus, wide_vectors


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def relu_update_output(input, output):
    """input; output [OUT] = max(input, 0), NaN kept."""
    m = input.size
    flat_input, flat_output = input.reshape(m), output.reshape(m)
    zero = input.dtype.type(0)
    for k in prange(flat_input.shape[0]):
        x = flat_input[k]
        flat_output[k] = zero if x < zero else x


@relu_update_output.numpy_twin
def relu_update_output_numpy(input, output):
    np.maximum(input, 0, out=output)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def relu_update_grad_input(input, grad_output, grad_input):
    """input; grad_output; grad_input [OUT] = grad_output where input > 0."""
    m = input.size
    flat_input, flat_grad_output = input.reshape(m), grad_output.reshape(m)
    flat_grad_input = grad_input.reshape(m)
    zero = input.dtype.type(0)
    for k in prange(flat_input.shape[0]):
        flat_grad_input[k] = flat_grad_output[k] if flat_input[k] > zero else zero


@relu_update_grad_input.numpy_twin
def relu_update_grad_input_numpy(input, grad_output, grad_input):
    np.multiply(grad_output, input > 0, out=grad_input)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def leaky_relu_update_output(input, output, slope):
    """input; output [OUT] = input if input > 0 else slope * input."""
    m = input.size
    flat_input, flat_output = input.reshape(m), output.reshape(m)
    zero = input.dtype.type(0)
    for k in prange(flat_input.shape[0]):
        x = flat_input[k]
        flat_output[k] = x * slope if x < zero else x


@leaky_relu_update_output.numpy_twin
def leaky_relu_update_output_numpy(input, output, slope):
    np.multiply(input, np.where(input < 0, slope, input.dtype.type(1)), out=output)


@kernel(parallel_min=PARALLEL_MIN_STREAMING)
def leaky_relu_update_grad_input(input, grad_output, grad_input, slope):
    """input; grad_output; grad_input [OUT] = grad_output where input > 0,
    slope * grad_output elsewhere (the gradient at exactly 0 is the slope)."""
    m = input.size
    flat_input, flat_grad_output = input.reshape(m), grad_output.reshape(m)
    flat_grad_input = grad_input.reshape(m)
    zero = input.dtype.type(0)
    for k in prange(flat_input.shape[0]):
        g = flat_grad_output[k]
        flat_grad_input[k] = g if flat_input[k] > zero else g * slope


@leaky_relu_update_grad_input.numpy_twin
def leaky_relu_update_grad_input_numpy(input, grad_output, grad_input, slope):
    np.multiply(grad_output, np.where(input > 0, input.dtype.type(1), slope), out=grad_input)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def elu_update_output(input, output, alpha):
    """input; output [OUT] = input if input > 0 else alpha * (exp(input) - 1)."""
    m = input.size
    flat_input, flat_output = input.reshape(m), output.reshape(m)
    zero = input.dtype.type(0)
    alpha64 = np.float64(alpha)
    for k in prange(flat_input.shape[0]):
        x = flat_input[k]
        # wide inside and rounded once, so float32 results are within torch's error
        negative = input.dtype.type(alpha64 * vexpm1_wide(x))
        flat_output[k] = x if x > zero else negative


@elu_update_output.numpy_twin
def elu_update_output_numpy(input, output, alpha):
    negative = alpha * np.expm1(np.minimum(input, 0))
    np.copyto(output, np.where(input > 0, input, negative))


@kernel(parallel_min=PARALLEL_MIN_EXP)
def elu_update_grad_input(input, grad_output, grad_input, alpha):
    """input; grad_output; grad_input [OUT] = grad_output where input > 0,
    grad_output * alpha * exp(input) elsewhere."""
    m = input.size
    flat_input, flat_grad_output = input.reshape(m), grad_output.reshape(m)
    flat_grad_input = grad_input.reshape(m)
    zero = input.dtype.type(0)
    for k in prange(flat_input.shape[0]):
        wide_vectors()
        x = flat_input[k]
        g = flat_grad_output[k]
        flat_grad_input[k] = g if x > zero else g * alpha * vexp_nonpositive(x)


@elu_update_grad_input.numpy_twin
def elu_update_grad_input_numpy(input, grad_output, grad_input, alpha):
    slope = np.where(input > 0, input.dtype.type(1), alpha * np.exp(np.minimum(input, 0)))
    np.multiply(grad_output, slope, out=grad_input)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def softplus_update_output(input, output):
    """input; output [OUT] = log(1 + exp(input)), computed as
    max(x, 0) + log1p(exp(-|x|)) so it neither overflows nor loses small values."""
    m = input.size
    flat_input, flat_output = input.reshape(m), output.reshape(m)
    for k in prange(flat_input.shape[0]):
        flat_output[k] = vsoftplus(flat_input[k])


@softplus_update_output.numpy_twin
def softplus_update_output_numpy(input, output):
    np.add(np.maximum(input, 0), np.log1p(np.exp(-np.abs(input))), out=output)


@kernel(parallel_min=PARALLEL_MIN_EXP)
def softplus_update_grad_input(input, grad_output, grad_input):
    """input; grad_output; grad_input [OUT] = grad_output * sigmoid(input),
    with exp taken of -|x| only."""
    m = input.size
    flat_input, flat_grad_output = input.reshape(m), grad_output.reshape(m)
    flat_grad_input = grad_input.reshape(m)
    one = input.dtype.type(1)
    zero = input.dtype.type(0)
    for k in prange(flat_input.shape[0]):
        wide_vectors()
        x = flat_input[k]
        e = vexp_nonpositive(-abs(x))
        sigmoid = one / (one + e) if x >= zero else e / (one + e)
        flat_grad_input[k] = flat_grad_output[k] * sigmoid


@softplus_update_grad_input.numpy_twin
def softplus_update_grad_input_numpy(input, grad_output, grad_input):
    e = np.exp(-np.abs(input))
    sigmoid = np.where(input >= 0, 1 / (1 + e), e / (1 + e))
    np.multiply(grad_output, sigmoid, out=grad_input)
