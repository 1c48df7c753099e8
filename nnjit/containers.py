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

    def _walk_back(self, input, gradOutput, step):
        """Last child to first, each given the input it saw in forward and the gradient of the
        child after it; ``step(module, module_input, grad)`` returns the child's gradInput."""
        grad = gradOutput
        for index in range(len(self.modules) - 1, -1, -1):
            module = self.modules[index]
            try:
                grad = step(module, self._child_input(index, input), grad)
            except Exception as exc:
                _raise_in_child(exc, index, module)
        return grad

    def backward(self, input, gradOutput):
        self.gradInput = self._walk_back(input, gradOutput, lambda m, x, g: m.backward(x, g))
        return self.gradInput

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
