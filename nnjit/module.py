"""The Torch7-style base classes: Module (forward/backward over updateOutput, updateGradInput,
accGradParameters) and Criterion (forward/backward of a loss).

Modules own their ``output`` and ``gradInput`` buffers and reuse them from call to call, as in
Torch7: copy an output you want to keep before the next forward of the same module.
"""
import numpy as np

from . import _checks


class Module:
    """A layer: ``output = forward(input)``, ``gradInput = backward(input, gradOutput)``."""

    def __init__(self):
        self.output = None
        self.gradInput = None
        self.training = True

    def forward(self, input):
        """Compute, store in ``output`` and return the module's output for ``input``."""
        return self.updateOutput(input)

    def backward(self, input, gradOutput):
        """Gradient with respect to ``input`` (returned and stored in ``gradInput``), and
        accumulation of the parameter gradients. ``input`` is the one given to forward."""
        self.updateGradInput(input, gradOutput)
        self.accGradParameters(input, gradOutput)
        return self.gradInput

    def updateOutput(self, input):
        raise NotImplementedError(f"{type(self).__name__} does not implement updateOutput")

    def updateGradInput(self, input, gradOutput):
        raise NotImplementedError(f"{type(self).__name__} does not implement updateGradInput")

    def accGradParameters(self, input, gradOutput):
        """Accumulate (+=) parameter gradients; nothing to do for a parameter-free module."""

    def zeroGradParameters(self):
        for grad in self.getGradParameters():
            grad.fill(0)

    def getParameters(self):
        """The parameter arrays, updated in place by the optimizers."""
        return []

    def getGradParameters(self):
        """The gradient arrays, in the order of getParameters()."""
        return []

    def train(self):
        """Training mode (Dropout drops, BatchNormalization uses batch statistics)."""
        self.training = True
        return self

    def evaluate(self):
        """Evaluation mode (Dropout is the identity, BatchNormalization uses moving statistics)."""
        self.training = False
        return self

    @property
    def _name(self):
        return type(self).__name__

    def __repr__(self):
        return self._name

    # helpers for subclasses -------------------------------------------------------------
    def _output_buffer(self, shape, dtype, input):
        self.output = _checks.buffer(self.output, shape, dtype, avoid=input)
        return self.output

    def _grad_input_buffer(self, shape, dtype, grad_output):
        self.gradInput = _checks.buffer(self.gradInput, shape, dtype, avoid=grad_output)
        return self.gradInput


class Criterion:
    """A loss: ``loss = forward(input, target)``, ``gradInput = backward(input, target)``."""

    def __init__(self):
        self.output = None
        self.gradInput = None
        self._row_loss = None

    def forward(self, input, target):
        """Compute, store in ``output`` and return the loss (a scalar of the input's dtype)."""
        return self.updateOutput(input, target)

    def backward(self, input, target):
        """Compute, store in ``gradInput`` and return the gradient of the loss."""
        return self.updateGradInput(input, target)

    def updateOutput(self, input, target):
        raise NotImplementedError(f"{type(self).__name__} does not implement updateOutput")

    def updateGradInput(self, input, target):
        raise NotImplementedError(f"{type(self).__name__} does not implement updateGradInput")

    @property
    def _name(self):
        return type(self).__name__

    def __repr__(self):
        return self._name

    def _batch_input(self, input):
        x = _checks.float_array(input, self._name)
        _checks.require_ndim(x, 2, self._name)
        if x.shape[0] == 0:
            raise ValueError(f"{self._name}: the batch is empty, the loss of no samples is undefined")
        return x

    def _row_loss_buffer(self, n, dtype):
        self._row_loss = _checks.buffer(self._row_loss, (n,), dtype)
        return self._row_loss

    def _grad_input_buffer(self, shape, dtype):
        self.gradInput = _checks.buffer(self.gradInput, shape, dtype)
        return self.gradInput

    def _store_loss(self, loss, dtype):
        self.output = dtype.type(loss)
        return self.output
