"""Sequential: children applied one after another."""
from .module import Module


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
        for index, module in enumerate(self.modules):
            try:
                current = module.forward(current)
            except Exception as exc:
                _raise_in_child(exc, index, module)
        self.output = current
        return self.output

    def _child_input(self, index, input):
        return self.modules[index - 1].output if index > 0 else input

    def _walk_back(self, input, gradOutput, step, stop=0, last_step=None):
        """Last child to child ``stop``, each given the input it saw in forward and the gradient
        of the child after it; ``step(module, module_input, grad)`` returns the child's
        gradInput (``last_step`` instead, if given, for child ``stop``)."""
        grad = gradOutput
        for index in range(len(self.modules) - 1, stop - 1, -1):
            module = self.modules[index]
            call = last_step if last_step is not None and index == stop else step
            try:
                grad = call(module, self._child_input(index, input), grad)
            except Exception as exc:
                _raise_in_child(exc, index, module)
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
        self.gradInput = self._walk_back(input, gradOutput, lambda m, x, g: m.backward(x, g))
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
                            last_step=lambda m, x, g: m._acc_parameters_only(x, g))

    def _has_parameters(self):
        return any(module._has_parameters() for module in self.modules)

    def updateGradInput(self, input, gradOutput):
        self.gradInput = self._walk_back(
            input, gradOutput, lambda m, x, g: m.updateGradInput(x, g))
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
