"""Dropout: in training, zero each element with probability p and scale the kept ones by
1 / (1 - p); in evaluation, the identity."""
import numpy as np

from . import _checks
from . import kernels as K
from .module import Module


_FULL_RANGE = 2**64


def _uint64_draw(bit_generator):
    """What ``integers(0, 2**64, dtype=np.uint64)`` returns from a generator on
    ``bit_generator``, and the state it leaves, at a quarter of its cost: for PCG64 (what
    ``default_rng`` makes) one raw 64-bit output; for MT19937 (NumPy's global generator, under
    ``np.random.seed``) two raw 32-bit outputs, high half first. Other bit generators: None.
    The first Dropout forward of an MLP step spent 19 us in ``np.random.randint``
    (784-256-256-10, float32); tests/test_dropout.py holds this to NumPy's own draw."""
    kind = type(bit_generator)
    if kind is np.random.PCG64:
        return np.uint64(bit_generator.random_raw())
    if kind is np.random.MT19937:
        high = bit_generator.random_raw()
        return np.uint64((high << 32) | bit_generator.random_raw())
    return None


# NumPy >= 1.25 names the global generator's bit generator; before, draws take randint
_global_bit_generator = getattr(np.random, "get_bit_generator", lambda: None)


class Dropout(Module):
    """``Dropout(p=0.5, seed=None)``. Each training forward draws a 64-bit seed, from the
    layer's own generator when ``seed`` is given, else from NumPy's global generator (so
    ``np.random.seed`` makes a run repeatable); the mask is a hash of (seed, element index),
    identical on both backends and for any thread count."""

    _per_call = ("_mask_seed", "_mask_shape")  # the last forward's mask

    _keeps_width = True
    _shard = None  # this rank's part of the global batch (nnjit.distributed)

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        self.p = _checks.probability(p, "Dropout")
        self._generator = None if seed is None else np.random.default_rng(seed)
        self._mask_seed = None
        self._mask_shape = None

    def _next_seed(self):
        if self._generator is not None:
            seed = _uint64_draw(self._generator.bit_generator)
            if seed is None:
                seed = self._generator.integers(0, _FULL_RANGE, dtype=np.uint64)
        else:
            seed = _uint64_draw(_global_bit_generator())
            if seed is None:
                seed = np.random.randint(0, _FULL_RANGE, dtype=np.uint64)
        return np.uint64(seed)

    _cast = (None, None, None)  # (p, dtype, (threshold, scale)) of the last call

    def _kernel_args(self, dtype):
        cached_p, cached_dtype, cast = self._cast
        p = self.p  # may have been reassigned: checked again unless it is the float last seen
        if type(p) is not float or p != cached_p or dtype is not cached_dtype:
            p = _checks.probability(p, self._name)
            scale = dtype.type(0) if p == 1.0 else dtype.type(1.0 / (1.0 - p))
            cast = (K.drop_threshold(p), scale)
            self._cast = (p, dtype, cast)
        return cast + (self._mask_seed,)

    def updateOutput(self, input):
        x = _checks.float_array(input, self._name)
        out = self._output_buffer(x.shape, x.dtype, x)
        if not self.training:
            np.copyto(out, x)
            self._mask_seed = None
            return out
        self._new_mask(x)
        K.dropout_update_output(x.reshape(-1), out.reshape(-1), *self._kernel_args(x.dtype))
        return out

    def _new_mask(self, x):
        """Draws a training forward's mask for input x: its seed and shape."""
        self._mask_seed = self._next_seed()
        if self._shard is not None:  # drop what one process drops at these rows of the batch
            self._shard.check_rows(x.shape[0], self._name)
            row_size = x.size // x.shape[0] if x.shape[0] else 0
            self._mask_seed = K.shifted_seed(self._mask_seed, self._shard.start * row_size)
        self._mask_shape = x.shape

    def updateGradInput(self, input, gradOutput):
        x = _checks.float_array(input, self._name)
        g = _checks.grad_output_array(gradOutput, x.shape, x.dtype, self._name)
        grad_input = self._grad_input_buffer(x.shape, x.dtype, g)
        if self._mask_seed is None:  # the last forward was in evaluation mode
            np.copyto(grad_input, g)
            return grad_input
        if x.shape != self._mask_shape:
            raise ValueError(f"{self._name}: backward input has shape {x.shape}, but the last "
                             f"forward's mask has shape {self._mask_shape}")
        K.dropout_update_grad_input(g.reshape(-1), grad_input.reshape(-1),
                                    *self._kernel_args(x.dtype))
        return grad_input

    @property
    def mask(self):
        """The last training forward's multipliers: 0 where dropped, 1 / (1 - p) where kept
        (None after an evaluation forward)."""
        if self._mask_seed is None:
            return None
        dtype = self.output.dtype
        mask = np.empty(self._mask_shape, dtype=dtype)
        K.dropout_update_output(np.ones(mask.size, dtype=dtype), mask.reshape(-1),
                                *self._kernel_args(dtype))
        return mask

    def __repr__(self):
        return f"Dropout({_checks.short_number(self.p)})"


# LeakyReLU then Dropout in one pass each way, for Sequential (kernels/dropout.py has why).
# Each function returns None, having changed nothing, unless the call is the plain one: float
# arrays as the kernels take them, a LeakyReLU slope and a Dropout p that are valid floats, a
# Dropout outside a data-parallel shard. Sequential then calls the two modules in turn, which
# raise their own errors for what was not plain.

def _plain(x, activation, dropout):
    p = dropout.p
    # dtype by equality: an array the caller unpickled has a dtype object equal to NumPy's
    # float32 or float64 but not the same object
    return type(x) is np.ndarray and x.dtype in _checks.FLOAT_DTYPES \
        and x.flags.c_contiguous and type(activation.slope) is float and type(p) is float \
        and 0.0 <= p <= 1.0 and dropout._shard is None


def leaky_relu_dropout_forward(activation, dropout, input):
    """activation.forward(input), then dropout.forward of that, in training mode; returns
    the Dropout's output, or None (see above)."""
    if not _plain(input, activation, dropout):
        return None
    activated = activation._output_buffer(input.shape, input.dtype, input)
    output = dropout._output_buffer(input.shape, input.dtype, activated)
    if not _checks.apart(output, input):  # a hand-set buffer: the one pass would read what it wrote
        return None
    dropout._new_mask(input)
    K.leaky_relu_dropout_update_output(input, activated, output, *activation._scalars(input.dtype),
                                       *dropout._kernel_args(input.dtype))
    return output


def leaky_relu_dropout_backward(activation, dropout, input, grad_output):
    """dropout.backward then activation.backward, given the activation's input and the
    gradient of the Dropout's output; returns the activation's gradInput, or None (see
    above; also after an evaluation forward, or a forward of another shape)."""
    if dropout._mask_seed is None or not _plain(input, activation, dropout) \
            or type(grad_output) is not np.ndarray or grad_output.dtype != input.dtype \
            or grad_output.shape != input.shape or input.shape != dropout._mask_shape \
            or not grad_output.flags.c_contiguous:
        return None
    dropout_grad = dropout._grad_input_buffer(input.shape, input.dtype, grad_output)
    grad_input = activation._grad_input_buffer(input.shape, input.dtype, grad_output)
    if not (_checks.apart(dropout_grad, input) and _checks.apart(grad_input, dropout_grad)):
        return None
    K.leaky_relu_dropout_update_grad_input(input, grad_output, dropout_grad, grad_input,
                                           *activation._scalars(input.dtype),
                                           *dropout._kernel_args(input.dtype))
    return grad_input
