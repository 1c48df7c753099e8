"""Optimizer steps, one fused pass over each parameter (flat (m,) arrays, updated in place)."""
import numpy as np
from numba import prange

from ._jit import kernel


@kernel()
def sgd_momentum_step(variable, gradient, accumulated, learning_rate, momentum):
    """variable [OUT] (m,); gradient (m,); accumulated [OUT] (m,):
    accumulated = momentum * accumulated + learning_rate * gradient; variable -= accumulated."""
    for k in prange(variable.shape[0]):
        a = momentum * accumulated[k] + learning_rate * gradient[k]
        accumulated[k] = a
        variable[k] -= a


@sgd_momentum_step.numpy_twin
def sgd_momentum_step_numpy(variable, gradient, accumulated, learning_rate, momentum):
    accumulated *= momentum
    accumulated += learning_rate * gradient
    variable -= accumulated


@kernel()
def adam_step(variable, gradient, m, v, step_size, beta1, beta2, epsilon):
    """variable [OUT] (m,); gradient (m,); m, v [OUT] (m,) first and second moments;
    step_size = learning_rate * sqrt(1 - beta2**t) / (1 - beta1**t) (bias correction folded in):
    m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
    variable -= step_size * m / (sqrt(v) + epsilon)."""
    one = variable.dtype.type(1)
    for k in prange(variable.shape[0]):
        g = gradient[k]
        mk = beta1 * m[k] + (one - beta1) * g
        vk = beta2 * v[k] + (one - beta2) * g * g
        m[k] = mk
        v[k] = vk
        variable[k] -= step_size * mk / (np.sqrt(vk) + epsilon)


@adam_step.numpy_twin
def adam_step_numpy(variable, gradient, m, v, step_size, beta1, beta2, epsilon):
    one = variable.dtype.type(1)
    m *= beta1
    m += (one - beta1) * gradient
    v *= beta2
    v += (one - beta2) * gradient * gradient
    variable -= step_size * m / (np.sqrt(v) + epsilon)
