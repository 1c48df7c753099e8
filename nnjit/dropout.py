"""Dropout: in training, zero each element with probability p and scale the kept ones by
1 / (1 - p); in evaluation, the identity."""
import numpy as np

from . import _checks
from . import kernels as K
from .module import Module


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
            return np.uint64(self._generator.integers(0, 2**64, dtype=np.uint64))
        return np.uint64(np.random.randint(0, 2**64, dtype=np.uint64))

    def _kernel_args(self, dtype):
        p = _checks.probability(self.p, self._name)  # p may have been reassigned
        scale = dtype.type(0) if p == 1.0 else dtype.type(1.0 / (1.0 - p))
        return K.drop_threshold(p), scale, self._mask_seed

    def updateOutput(self, input):
        x = _checks.float_array(input, self._name)
        out = self._output_buffer(x.shape, x.dtype, x)
        if not self.training:
            np.copyto(out, x)
            self._mask_seed = None
            return out
        self._mask_seed = self._next_seed()
        if self._shard is not None:  # drop what one process drops at these rows of the batch
            self._shard.check_rows(x.shape[0], self._name)
            row_size = x.size // x.shape[0] if x.shape[0] else 0
            self._mask_seed = K.shifted_seed(self._mask_seed, self._shard.start * row_size)
        self._mask_shape = x.shape
        K.dropout_update_output(x.reshape(-1), out.reshape(-1), *self._kernel_args(x.dtype))
        return out

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
        return f"Dropout({self.p:g})"
