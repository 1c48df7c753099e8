"""Dropout with a counter-based mask: element k of a call with seed s is dropped when the top
24 bits of splitmix64(s + k * golden) fall below p * 2**24.

The mask is a pure function of (seed, element index): no generator state, the same for any
thread count or chunking, identical between the Numba kernel and its NumPy twin, and backward
recomputes it instead of reading a stored mask.
"""
import numpy as np
from numba import prange

from ._jit import jit, kernel

MASK_BITS = 24
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# Shift counts typed uint64: mixing uint64 with a signed literal makes Numba compute in float64.
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_TOP = np.uint64(64 - MASK_BITS)


def drop_threshold(p):
    """The integer threshold for drop probability p: round(p * 2**24) as uint64."""
    return np.uint64(round(p * (1 << MASK_BITS)))


def shifted_seed(seed, offset):
    """The seed whose element k is element offset + k of ``seed``'s mask (the hash takes
    seed + index * golden, mod 2**64): a rank holding rows from ``offset`` elements on of a
    global batch drops exactly what one process drops there."""
    return np.uint64((int(seed) + int(offset) * int(_GOLDEN)) % (1 << 64))


@jit
def _mask_bits(seed, index):
    x = seed + np.uint64(index) * _GOLDEN
    x = (x ^ (x >> _S30)) * _MIX1
    x = (x ^ (x >> _S27)) * _MIX2
    return (x ^ (x >> _S31)) >> _TOP


def _mask_bits_numpy(seed, n):
    with np.errstate(over="ignore"):
        x = np.uint64(seed) + np.arange(n, dtype=np.uint64) * _GOLDEN
        x = (x ^ (x >> _S30)) * _MIX1
        x = (x ^ (x >> _S27)) * _MIX2
    return (x ^ (x >> _S31)) >> _TOP


@kernel()
def dropout_update_output(input, output, threshold, scale, seed):
    """input (m,) flat; output [OUT] (m,) = input * scale where kept, 0 where dropped;
    threshold from drop_threshold(p); scale 1/(1-p) in input's dtype; seed uint64."""
    zero = input.dtype.type(0)
    for k in prange(input.shape[0]):
        output[k] = zero if _mask_bits(seed, k) < threshold else input[k] * scale


def _dropout_numpy(input, output, threshold, scale, seed):
    keep = _mask_bits_numpy(seed, input.shape[0]) >= threshold
    np.multiply(input, keep, out=output)
    output *= scale


dropout_update_output.numpy_twin(_dropout_numpy)


@kernel()
def dropout_update_grad_input(grad_output, grad_input, threshold, scale, seed):
    """grad_output (m,) flat; grad_input [OUT] (m,): the forward mask of the same seed applied
    to grad_output."""
    zero = grad_output.dtype.type(0)
    for k in prange(grad_output.shape[0]):
        grad_input[k] = zero if _mask_bits(seed, k) < threshold else grad_output[k] * scale


# Not a call of dropout_update_output: that Kernel follows the backend in force, and the
# NumPy twin must stay NumPy (it once ran the Numba kernel under the numba backend).
dropout_update_grad_input.numpy_twin(_dropout_numpy)
