"""Optimizer steps, one fused pass over each parameter (flat (m,) arrays, updated in place)."""
import numpy as np
from numba import prange

from ._jit import kernel


@kernel()
def zero_fill(gradient):
    """gradient [OUT] (m,) = 0, for zeroGradParameters. Called back to back, the serial loop
    beats ndarray.fill(0) (262144 float64: 22.5 against 36.8 us) and the parallel one is
    slower below 1M elements; but in a training step the fill follows the optimizer's parallel
    launch, with TBB's worker awake, and there the parallel variant from the default threshold
    is what pays (MLP step, float64: 2403 us with fill(0), 2390 serial, 2354 parallel;
    docs/performance.md)."""
    zero = gradient.dtype.type(0)
    for k in prange(gradient.shape[0]):
        gradient[k] = zero


@zero_fill.numpy_twin
def zero_fill_numpy(gradient):
    gradient.fill(0)


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
def adam_step(variable, gradient, m, v, step_size, beta1, beta2, epsilon, decay1, decay2):
    """variable [OUT] (m,); gradient (m,); m, v [OUT] (m,) first and second moments;
    step_size = learning_rate * sqrt(1 - beta2**t) / (1 - beta1**t) (bias correction folded in);
    decay1 = 1 - beta1 and decay2 = 1 - beta2, computed in float64 by the caller (in float32,
    1 - 0.999 loses four digits):
    m = beta1 m + decay1 g; v = beta2 v + decay2 g^2; variable -= step_size * m / (sqrt(v) + epsilon)."""
    for k in prange(variable.shape[0]):
        g = gradient[k]
        mk = beta1 * m[k] + decay1 * g
        vk = beta2 * v[k] + decay2 * g * g
        m[k] = mk
        v[k] = vk
        variable[k] -= step_size * mk / (np.sqrt(vk) + epsilon)


@adam_step.numpy_twin
def adam_step_numpy(variable, gradient, m, v, step_size, beta1, beta2, epsilon, decay1, decay2):
    m *= beta1
    m += decay1 * gradient
    v *= beta2
    v += decay2 * gradient * gradient
    variable -= step_size * m / (np.sqrt(v) + epsilon)
