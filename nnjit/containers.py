"""Sequential: children applied one after another."""
from .activations import LeakyReLU
from .dropout import Dropout, leaky_relu_dropout_backward, leaky_relu_dropout_forward
from .module import Module

# What an instance may override and so keep from running fused with its neighbour
_CALLS = ("forward", "backward", "updateOutput", "updateGradInput")


def _fused_pair(first, second):
    """Whether children first, second are a LeakyReLU then a training Dropout that Sequential
    runs as one pass each way (same results; see kernels/dropout.py): exactly those classes,
    neither with a call of its own set on the instance."""
    if type(first) is not LeakyReLU or type(second) is not Dropout or not second.training:
        return False
    first_attributes, second_attributes = first.__dict__, second.__dict__
    return not any(name in first_attributes or name in second_attributes for name in _CALLS)


def _raise_in_child(exc, index, child):
    """Re-raise ``exc`` with the failing child named, keeping its type where it allows."""
    message = f"in module {index} ({child!r}) of Sequential: {exc}"
    try:
        wrapped = type(exc)(message)
    except Exception:
        raise exc
    raise wrapped from exc


class Sequential(Module):
    """Feeds the input through each child in turn; backward feeds each child the input it saw
    in forward. Indexing, ``len`` and ``add`` work as on a list of modules."""

    def __init__(self, *modules):
        super().__init__()
        self.modules = []
        for module in modules:
            self.add(module)

    def add(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.add: expected a Module, got {type(module).__name__}")
        self.modules.append(module)
        return self

    def __getitem__(self, index):
        return self.modules[index]

    def __len__(self):
        return len(self.modules)

    def __iter__(self):
        return iter(self.modules)

    def updateOutput(self, input):
        current = input
        modules = self.modules
        index, count = 0, len(modules)
        while index < count:
            module = modules[index]
            try:
                if index + 1 < count and _fused_pair(module, modules[index + 1]):
                    fused = leaky_relu_dropout_forward(module, modules[index + 1], current)
                    if fused is not None:
                        current = fused
                        index += 2
                        continue
                current = module.forward(current)
            except Exception as exc:
                _raise_in_child(exc, index, module)
            index += 1
        self.output = current
        return self.output

    def _child_input(self, index, input):
        return self.modules[index - 1].output if index > 0 else input

    def _walk_back(self, input, gradOutput, step, stop=0, last_step=None, fuse=False):
        """Last child to child ``stop``, each given the input it saw in forward and the gradient
        of the child after it; ``step(module, module_input, grad)`` returns the child's
        gradInput (``last_step`` instead, if given, for child ``stop``). With ``fuse``, step
        computes the gradient with respect to the input (backward, updateGradInput), which
        a LeakyReLU and Dropout pair then computes in one pass."""
        grad = gradOutput
        modules = self.modules
        first_fusable = stop if last_step is None else stop + 1  # child stop takes last_step
        index = len(modules) - 1
        while index >= stop:
            module = modules[index]
            try:
                if fuse and index - 1 >= first_fusable and _fused_pair(modules[index - 1], module):
                    fused = leaky_relu_dropout_backward(
                        modules[index - 1], module, self._child_input(index - 1, input), grad)
                    if fused is not None:
                        grad = fused
                        index -= 2
                        continue
                call = last_step if last_step is not None and index == stop else step
                grad = call(module, self._child_input(index, input), grad)
            except Exception as exc:
                _raise_in_child(exc, index, module)
            index -= 1
        return grad

    def backward(self, input, gradOutput):
        for index in range(1, len(self.modules)):
            if not self.modules[index].input_gradient:
                raise ValueError(
                    f"Sequential: module {index} ({self.modules[index]!r}) has input_gradient "
                    f"False, but module {index - 1} needs the gradient with respect to its "
                    "input; set input_gradient = False on the first module or the Sequential")
        if not self.input_gradient:
            self._acc_parameters_only(input, gradOutput)
            return None
        self.gradInput = self._walk_back(input, gradOutput, lambda m, x, g: m.backward(x, g),
                                         fuse=True)
        return self.gradInput

    def _acc_parameters_only(self, input, gradOutput):
        """backward without the gradient with respect to input: children after the first one
        with parameters run backward in full, that one accumulates its parameter gradients
        only, and those before it (nothing to accumulate, no gradient wanted) are skipped."""
        self.gradInput = None
        first = next((i for i, m in enumerate(self.modules) if m._has_parameters()),
                     len(self.modules))
        for module in self.modules[:first]:
            module.gradInput = None  # not computed this time: no stale array left behind
        if first < len(self.modules):
            self._walk_back(input, gradOutput, lambda m, x, g: m.backward(x, g), stop=first,
                            last_step=lambda m, x, g: m._acc_parameters_only(x, g), fuse=True)

    def _has_parameters(self):
        return any(module._has_parameters() for module in self.modules)

    def updateGradInput(self, input, gradOutput):
        self.gradInput = self._walk_back(
            input, gradOutput, lambda m, x, g: m.updateGradInput(x, g), fuse=True)
        return self.gradInput

    def accGradParameters(self, input, gradOutput):
        """Needs the children's gradInput from a preceding updateGradInput, as in Torch7."""
        def step(module, module_input, grad):
            module.accGradParameters(module_input, grad)
            return module.gradInput

        self._walk_back(input, gradOutput, step)

    def zeroGradParameters(self):
        for module in self.modules:
            module.zeroGradParameters()

    def getParameters(self):
        """One list per child (the optimizers take these)."""
        return [module.getParameters() for module in self.modules]

    def getGradParameters(self):
        return [module.getGradParameters() for module in self.modules]

    def train(self):
        self.training = True
        for module in self.modules:
            module.train()
        return self

    def evaluate(self):
        self.training = False
        for module in self.modules:
            module.evaluate()
        return self

    def __repr__(self):
        lines = [f"  ({i}): " + repr(m).replace("\n", "\n  ") for i, m in enumerate(self.modules)]
        return "Sequential {\n" + "\n".join(lines) + "\n}" if lines else "Sequential {}"
