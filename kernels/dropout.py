"""Dropout with a counter-based mask: element k of a call with seed s is dropped when the top
24 bits of splitmix64(s + k * golden) fall below p * 2**24.

The mask is a pure function of (seed, element index): no generator state, the same for any
thread count or chunking, identical between the Numba kernel and its NumPy twin, and backward
recomputes it instead of reading a stored mask.
"""
import numpy as np
from numba import prange

from ._jit import jit, kernel
from ._vmath import inlined
from .activations import leaky_relu_update_grad_input, leaky_relu_update_output

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


# Elements per chunk of the parallel loop: the hash's seed + k * golden is carried from element
# to element as an add, which only a serial run of elements allows. The multiply it saves was
# one of three 64-bit vector multiplies per element, the loop's bottleneck: serial, 0.48 ->
# 0.30-0.39 ns an element (docs/performance.md).
_CHUNK = 4096


@inlined
def _dropped(key, threshold):
    """Whether the element whose key is seed + k * golden is dropped: splitmix64 of the key,
    its top MASK_BITS bits below threshold (inlined into each chunk's loop)."""
    x = (key ^ (key >> _S30)) * _MIX1
    x = (x ^ (x >> _S27)) * _MIX2
    # the top bits of splitmix64's last step, x ^ (x >> 31), are x's own
    return (x >> _TOP) < threshold


@jit
def _masked_scale_chunk(values, out, threshold, scale, seed, start, stop):
    """out[k] = 0 where element k is dropped, else values[k] * scale, for start <= k < stop."""
    zero = values.dtype.type(0)
    key = seed + np.uint64(start) * _GOLDEN
    # indexed from 0 through slices: with k from start, Numba keeps its negative-index
    # wraparound and LLVM vectorizes with gathers and scatters (2.6x slower than this loop)
    chunk, chunk_out = values[start:stop], out[start:stop]
    for j in range(chunk.shape[0]):
        chunk_out[j] = zero if _dropped(key, threshold) else chunk[j] * scale
        key += _GOLDEN


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
    n = input.shape[0]
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        _masked_scale_chunk(input, output, threshold, scale, seed, chunk * _CHUNK,
                            min(chunk * _CHUNK + _CHUNK, n))


def _dropout_numpy(input, output, threshold, scale, seed):
    """The twin of the Dropout kernels, and of the fused ones' Dropout half: arrays of any
    shape, element k of the flattened array being element k of the mask."""
    keep = (_mask_bits_numpy(seed, input.size) >= threshold).reshape(input.shape)
    np.multiply(input, keep, out=output)
    output *= scale


dropout_update_output.numpy_twin(_dropout_numpy)


@kernel()
def dropout_update_grad_input(grad_output, grad_input, threshold, scale, seed):
    """grad_output (m,) flat; grad_input [OUT] (m,): the forward mask of the same seed applied
    to grad_output."""
    n = grad_output.shape[0]
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        _masked_scale_chunk(grad_output, grad_input, threshold, scale, seed, chunk * _CHUNK,
                            min(chunk * _CHUNK + _CHUNK, n))


# Not a call of dropout_update_output: that Kernel follows the backend in force, and the
# NumPy twin must stay NumPy (it once ran the Numba kernel under the numba backend).
dropout_update_grad_input.numpy_twin(_dropout_numpy)


# LeakyReLU then Dropout, the pair an MLP's hidden layers end in, as one pass each way
# (Sequential runs them so, nnjit/containers.py): each writes what the two modules write, the
# same values bit for bit (tests/test_fusion.py), with one launch and one read of the input
# instead of two each. Like the activations' kernels they take C-contiguous arrays of any
# shape, element k being element k of the flattened array (the mask's index).

@jit
def _leaky_masked_chunk(values, activated, out, slope, threshold, scale, seed, start, stop):
    """activated[k] = leaky_relu(values[k]); out[k] = 0 where element k is dropped, else
    activated[k] * scale; for start <= k < stop (indexed from 0, see _masked_scale_chunk)."""
    zero = values.dtype.type(0)
    key = seed + np.uint64(start) * _GOLDEN
    chunk, chunk_activated, chunk_out = values[start:stop], activated[start:stop], out[start:stop]
    for j in range(chunk.shape[0]):
        value = chunk[j]
        leaky = value * slope if value < zero else value
        chunk_activated[j] = leaky
        chunk_out[j] = zero if _dropped(key, threshold) else leaky * scale
        key += _GOLDEN


@kernel()
def leaky_relu_dropout_update_output(input, activated, output, slope, threshold, scale, seed):
    """input; activated [OUT] = LeakyReLU(slope) of input; output [OUT] = Dropout of activated:
    what leaky_relu_update_output then dropout_update_output (on the flattened arrays) write."""
    m = input.size
    flat_input, flat_activated, flat_output = input.reshape(m), activated.reshape(m), \
        output.reshape(m)
    for chunk in prange((m + _CHUNK - 1) // _CHUNK):
        _leaky_masked_chunk(flat_input, flat_activated, flat_output, slope, threshold, scale,
                            seed, chunk * _CHUNK, min(chunk * _CHUNK + _CHUNK, m))


@leaky_relu_dropout_update_output.numpy_twin
def leaky_relu_dropout_update_output_numpy(input, activated, output, slope, threshold, scale,
                                           seed):
    leaky_relu_update_output.numpy(input, activated, slope)
    _dropout_numpy(activated, output, threshold, scale, seed)


@jit
def _masked_leaky_grad_chunk(input, grad_output, dropout_grad, grad_input, slope, threshold,
                             scale, seed, start, stop):
    """dropout_grad[k] = grad_output[k] masked and scaled; grad_input[k] = dropout_grad[k]
    where input[k] > 0, times slope elsewhere; for start <= k < stop."""
    zero = input.dtype.type(0)
    key = seed + np.uint64(start) * _GOLDEN
    chunk, chunk_grad = input[start:stop], grad_output[start:stop]
    chunk_dropout_grad, chunk_grad_input = dropout_grad[start:stop], grad_input[start:stop]
    for j in range(chunk.shape[0]):
        masked = zero if _dropped(key, threshold) else chunk_grad[j] * scale
        chunk_dropout_grad[j] = masked
        chunk_grad_input[j] = masked if chunk[j] > zero else masked * slope
        key += _GOLDEN


@kernel()
def leaky_relu_dropout_update_grad_input(input, grad_output, dropout_grad, grad_input, slope,
                                         threshold, scale, seed):
    """input, LeakyReLU's; grad_output, of Dropout's output; dropout_grad [OUT], Dropout's
    gradInput; grad_input [OUT], LeakyReLU's: what dropout_update_grad_input then
    leaky_relu_update_grad_input write."""
    m = input.size
    flat_input, flat_grad_output = input.reshape(m), grad_output.reshape(m)
    flat_dropout_grad, flat_grad_input = dropout_grad.reshape(m), grad_input.reshape(m)
    for chunk in prange((m + _CHUNK - 1) // _CHUNK):
        _masked_leaky_grad_chunk(flat_input, flat_grad_output, flat_dropout_grad,
                                 flat_grad_input, slope, threshold, scale, seed,
                                 chunk * _CHUNK, min(chunk * _CHUNK + _CHUNK, m))


@leaky_relu_dropout_update_grad_input.numpy_twin
def leaky_relu_dropout_update_grad_input_numpy(input, grad_output, dropout_grad, grad_input,
                                               slope, threshold, scale, seed):
    _dropout_numpy(grad_output, dropout_grad, threshold, scale, seed)
    leaky_relu_update_grad_input.numpy(input, dropout_grad, grad_input, slope)
