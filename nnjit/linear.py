"""Linear (fully connected) layer: output = input @ W.T + b."""
import numpy as np

from . import _checks
from . import kernels as K
from .module import Module


class _Parameter:
    """A parameter array attribute. Assigning stores a copy: C-contiguous, writable, of the
    layer's dtype and checked shape, owned by the module, so the optimizers update it in place
    without writing into the caller's array (a torch weight, say)."""

    def __set_name__(self, owner, name):
        self.name = name
        self.slot = "_" + name

    def __get__(self, module, owner=None):
        return self if module is None else getattr(module, self.slot)

    def __set__(self, module, value):
        who = module._name
        array = _checks.float_array(value, who, self.name, dtype=module.dtype)
        _checks.require_shape(array, module._shapes[self.name], who, self.name)
        if array is value or np.shares_memory(array, value):
            array = array.copy()
        setattr(module, self.slot, array)


def _all_bits_zero(array):
    """True when every entry of a C-contiguous float array is +0.0. The largest of its bits as
    unsigned integers: 15.9 us over 256x784 float64, against 35.3 for ``array.any()``. A -0.0
    counts as a change, so the caller takes its general path, which is right for any values."""
    return array.view(np.uint64 if array.itemsize == 8 else np.uint32).max() == 0


class Linear(Module):
    """``Linear(n_in, n_out)``: W of shape (n_out, n_in) (PyTorch's layout, so a torch weight
    can be assigned directly), b (n_out,), both uniform in +-1/sqrt(n_in). Computes in its
    parameters' dtype (float32 unless ``dtype=``), casting floating inputs to it."""

    _per_call = ("_weight_buffer",)  # scratch for the weight gradient

    W = _Parameter()
    b = _Parameter()
    gradW = _Parameter()
    gradb = _Parameter()

    _state_names = ("W", "b")  # what nnjit.save writes

    def _widths(self):
        return self.n_in, self.n_out

    def __init__(self, n_in, n_out, dtype=np.float32):
        super().__init__()
        n_in = _checks.positive_int(n_in, "Linear", "n_in")
        n_out = _checks.positive_int(n_out, "Linear", "n_out")
        self.dtype = _checks.param_dtype(dtype, "Linear")
        self._shapes = {"W": (n_out, n_in), "b": (n_out,), "gradW": (n_out, n_in), "gradb": (n_out,)}
        stdv = 1.0 / np.sqrt(n_in)
        self.W = np.random.uniform(-stdv, stdv, size=(n_out, n_in))
        self.b = np.random.uniform(-stdv, stdv, size=n_out)
        self.gradW = np.zeros((n_out, n_in))
        self.gradb = np.zeros(n_out)
        self._weight_buffer = None

    @property
    def n_in(self):
        return self._shapes["W"][1]

    @property
    def n_out(self):
        return self._shapes["W"][0]

    def _input(self, input):
        x = _checks.float_array(input, self._name, dtype=self.dtype)
        _checks.require_ndim(x, 2, self._name)
        if x.shape[1] != self.n_in:
            raise ValueError(f"{self._name}: input must have {self.n_in} features, got shape {x.shape}")
        return x

    def updateOutput(self, input):
        x = self._input(input)
        out = self._output_buffer((x.shape[0], self.n_out), self.dtype, x)
        K.linear_update_output(x, out, self.W, self.b)
        return out

    def updateGradInput(self, input, gradOutput):
        x = self._input(input)
        g = _checks.grad_output_array(gradOutput, (x.shape[0], self.n_out), self.dtype, self._name)
        grad_input = self._grad_input_buffer(x.shape, self.dtype, g)
        np.matmul(g, self.W, out=grad_input)
        return grad_input

    # Set by zeroGradParameters. Where BLAS cannot add the product to gradW in place (see
    # kernels/_blas.py: small products, the NumPy backend), the next accumulation then checks
    # that gradW is still all zeros (nothing added to it since) and lets the product write it
    # directly: a read of gradW in place of writing a buffer and adding it (float64 MLP step,
    # 784-256-256-10: -4%). Either way no weight buffer is allocated.
    _grads_zeroed = False

    def zeroGradParameters(self):
        super().zeroGradParameters()
        self._grads_zeroed = True

    def accGradParameters(self, input, gradOutput):
        x = self._input(input)
        g = _checks.grad_output_array(gradOutput, (x.shape[0], self.n_out), self.dtype, self._name)
        zeroed, self._grads_zeroed = self._grads_zeroed, False
        if K.linear_acc_grad_parameters_in_place(x, g, self.gradW, self.gradb):
            return
        if zeroed and _all_bits_zero(self.gradW):
            K.linear_first_grad_parameters(x, g, self.gradW, self.gradb)
            return
        self._weight_buffer = _checks.buffer(self._weight_buffer, self.W.shape, self.dtype)
        K.linear_acc_grad_parameters(x, g, self.gradW, self.gradb, self._weight_buffer)

    def getParameters(self):
        return [self.W, self.b]

    def getGradParameters(self):
        return [self.gradW, self.gradb]

    def __repr__(self):
        return f"Linear({self.n_in} -> {self.n_out})"
