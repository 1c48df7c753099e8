"""Flatten: (batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""
import math

from . import _checks
from .module import Module


class Flatten(Module):
    """Keeps the batch axis and flattens the rest; a reshape, so no data moves."""

    def _input(self, input):
        x = _checks.float_array(input, self._name)
        if x.ndim < 1:
            raise ValueError(f"{self._name}: input needs a batch axis, got a scalar")
        return x, (x.shape[0], math.prod(x.shape[1:]))

    def updateOutput(self, input):
        x, flat_shape = self._input(input)
        self.output = x.reshape(flat_shape)
        return self.output

    def updateGradInput(self, input, gradOutput):
        x, flat_shape = self._input(input)
        g = _checks.grad_output_array(gradOutput, flat_shape, x.dtype, self._name)
        self.gradInput = g.reshape(x.shape)
        return self.gradInput
