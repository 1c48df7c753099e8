"""The Torch7-style base classes: Module (forward/backward over updateOutput, updateGradInput,
accGradParameters) and Criterion (forward/backward of a loss).

Modules own their ``output`` and ``gradInput`` buffers and reuse them from call to call, as in
Torch7: copy an output you want to keep before the next forward of the same module.
What a call writes (outputs, buffers, what backward needs from forward) is kept per thread,
so one model can be evaluated from several threads at once, each getting its own result.
"""
import threading

import numpy as np

from . import _checks
from . import kernels as K
from .kernels._config import PARALLEL_MIN_ELEMENTS


class _CallState(threading.local):
    """Per-thread attributes of a module, None until the thread first sets them. Each module
    class gets a subclass with its own attributes (see _PerThreadCalls.__init_subclass__)."""
    output = None
    gradInput = None


_CREATE_LOCK = threading.Lock()


# zero_fill pays from where it runs its parallel variant (see its docstring); below, a model
# would compile it on its first zeroing for next to nothing (+0.1-0.2 s on a cold
# `nnjit train`).
_ZERO_FILL_MIN = PARALLEL_MIN_ELEMENTS


def _kernel_can_zero(array):
    """zero_fill takes float32 and float64 arrays it can see flat; NumPy fills the rest, and
    raises its own error for a read-only one."""
    return (array.dtype in (np.float32, np.float64) and array.flags.c_contiguous
            and array.flags.writeable)


def _calls(module):
    calls = module.__dict__.get("_call_state")
    if calls is None:  # a subclass that skipped __init__: create it once, under a lock
        with _CREATE_LOCK:
            calls = module.__dict__.setdefault("_call_state", type(module)._call_state_class())
    return calls


def _per_thread(name):
    """A property kept in the module's _CallState (a property, not __getattr__/__setattr__
    hooks: those doubled the Python cost of a small training step)."""
    def get(self):
        try:
            return getattr(self.__dict__["_call_state"], name)
        except KeyError:
            return getattr(_calls(self), name)

    def set(self, value):
        try:
            setattr(self.__dict__["_call_state"], name, value)
        except KeyError:
            setattr(_calls(self), name, value)
    return property(get, set)


class _PerThreadCalls:
    """Attributes kept per thread: ``output`` and ``gradInput``, and whatever a subclass names
    in its ``_per_call`` tuple (what one call writes and the next call of the same thread reads,
    such as what backward needs from forward). A class's names are added to its bases'."""

    _per_call = ("output", "gradInput")
    _per_call_names = frozenset(_per_call)
    _call_state_class = _CallState

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "_name" not in cls.__dict__:
            # the name the checks' messages give; a class attribute, not a property computing
            # type(self).__name__, since every call passes it (0.1 us of a 2 us 64x10 call)
            cls._name = cls.__name__
        new = [name for name in cls.__dict__.get("_per_call", ()) if name not in cls._per_call_names]
        if not new:
            return
        cls._per_call_names = cls._per_call_names | frozenset(new)
        cls._call_state_class = type(f"{cls.__name__}CallState", (cls._call_state_class,),
                                     dict.fromkeys(new))
        for name in new:
            setattr(cls, name, _per_thread(name))

    def __getstate__(self):
        """Copies and pickles carry the calling thread's call state as plain values."""
        state = {k: v for k, v in self.__dict__.items() if k != "_call_state"}
        calls = _calls(self)
        state.update({name: getattr(calls, name) for name in type(self)._per_call_names})
        return state

    def __setstate__(self, state):
        self.__dict__["_call_state"] = type(self)._call_state_class()
        for name, value in state.items():
            setattr(self, name, _checks.numpys_own(value))


for _name in _PerThreadCalls._per_call:
    setattr(_PerThreadCalls, _name, _per_thread(_name))


class Module(_PerThreadCalls):
    """A layer: ``output = forward(input)``, ``gradInput = backward(input, gradOutput)``.

    ``input_gradient = False`` on a module (usually the whole model) whose input is data, not
    something to differentiate: backward then only accumulates the parameter gradients and
    returns None (as torch does for an input without requires_grad). For an MLP's first
    Linear that is one matrix product in three of its backward."""

    input_gradient = True

    def __init__(self):
        self.__dict__["_call_state"] = type(self)._call_state_class()
        self.training = True

    def forward(self, input):
        """Compute, store in ``output`` and return the module's output for ``input``."""
        return self.updateOutput(input)

    def backward(self, input, gradOutput):
        """Gradient with respect to ``input`` (returned and stored in ``gradInput``), and
        accumulation of the parameter gradients. ``input`` is the one given to forward.
        With ``input_gradient`` False: the parameter gradients only; gradInput is None."""
        if not self.input_gradient:
            self._acc_parameters_only(input, gradOutput)
            return None
        grad_input = self.updateGradInput(input, gradOutput)
        self.accGradParameters(input, gradOutput)
        return self.gradInput if grad_input is None else grad_input

    def _acc_parameters_only(self, input, gradOutput):
        """backward without the gradient with respect to input (gradInput set to None)."""
        self.gradInput = None
        self.accGradParameters(input, gradOutput)

    def _has_parameters(self):
        return bool(self.getParameters())

    def updateOutput(self, input):
        raise NotImplementedError(f"{type(self).__name__} does not implement updateOutput")

    def updateGradInput(self, input, gradOutput):
        raise NotImplementedError(f"{type(self).__name__} does not implement updateGradInput")

    def accGradParameters(self, input, gradOutput):
        """Accumulate (+=) parameter gradients; nothing to do for a parameter-free module."""

    def zeroGradParameters(self):
        for grad in self.getGradParameters():
            if grad.size >= _ZERO_FILL_MIN and _kernel_can_zero(grad):
                K.zero_fill(grad.reshape(-1))
            else:
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

    def __repr__(self):
        return self._name

    # Feature widths, for checks that need them before any input is seen (nnjit.load sizing
    # BatchNormalization's statistics from its neighbours in a Sequential).
    _keeps_width = False  # True for modules whose output has the width of their input

    def _widths(self):
        """(input features, output features) when the module fixes them, else None."""
        return None

    # helpers for subclasses -------------------------------------------------------------
    # (the call state is fetched once: these run on every call)
    # (stored back only when new: a per-thread attribute costs 50 ns a store)
    def _output_buffer(self, shape, dtype, input):
        calls = self.__dict__.get("_call_state") or _calls(self)
        current = calls.output
        out = _checks.buffer(current, shape, dtype, avoid=input)
        if out is not current:
            calls.output = out
        return out

    def _grad_input_buffer(self, shape, dtype, grad_output):
        calls = self.__dict__.get("_call_state") or _calls(self)
        current = calls.gradInput
        grad = _checks.buffer(current, shape, dtype, avoid=grad_output)
        if grad is not current:
            calls.gradInput = grad
        return grad


class Criterion(_PerThreadCalls):
    """A loss: ``loss = forward(input, target)``, ``gradInput = backward(input, target)``."""

    _per_call = ("_row_loss",)

    def __init__(self):
        self.__dict__["_call_state"] = type(self)._call_state_class()

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

    def __repr__(self):
        return self._name

    def _batch_input(self, input):
        x = _checks.float_array(input, self._name)
        if x.ndim != 2:
            _checks.require_ndim(x, 2, self._name)
        if x.shape[0] == 0:
            raise ValueError(f"{self._name}: the batch is empty, the loss of no samples is undefined")
        return x

    # (the call state is fetched once, without _calls' function call, when it exists: these run
    # on every call, and a 64x10 criterion call is 3 us)
    def _row_loss_buffer(self, n, dtype):
        calls = self.__dict__.get("_call_state") or _calls(self)
        rows = calls._row_loss
        if rows is None or rows.shape[0] != n or rows.dtype != dtype:
            calls._row_loss = rows = np.empty(n, dtype)
        return rows

    def _grad_input_buffer(self, shape, dtype):
        calls = self.__dict__.get("_call_state") or _calls(self)
        calls.gradInput = grad = _checks.buffer(calls.gradInput, shape, dtype)
        return grad

    def _store_loss(self, loss, rows):
        """Store and return loss (the kernel's Python float) as a scalar of the computing dtype,
        made through rows, the call's row-loss buffer, which is free once the kernel summed it:
        a store and a read of its first slot take half of dtype.type(loss)'s 0.2 us."""
        rows[0] = loss
        calls = self.__dict__.get("_call_state") or _calls(self)
        calls.output = value = rows[0]
        return value
