"""Compile up front what a model needs, so the first real batch runs at full speed."""
import copy

import numpy as np

from . import kernels as K
from .kernels._jit import _compile_both
from .optim import _flatten, adam_optimizer, sgd_momentum


def warmup(model, input, criterion=None, target=None, optimizers=True):
    """Compile every kernel ``model`` (and ``criterion``) uses for this input's dtype, both
    the serial and the parallel variant, in training and evaluation mode, and the optimizer
    steps for the model's parameters. Runs on copies: the model, criterion and input are left
    exactly as they were. Only the first two rows of ``input`` and ``target`` are used."""
    model = copy.deepcopy(model)
    sample = np.asarray(input)[:2]
    token = _compile_both.set(True)
    try:
        for mode in (model.evaluate, model.train):
            mode()
            output = model.forward(sample)
            grad = np.ones_like(output)
            if criterion is not None:
                loss = copy.deepcopy(criterion)
                loss.forward(output, np.asarray(target)[:2])
                grad = loss.backward(output, np.asarray(target)[:2])
            model.backward(sample, grad)
        # zeroGradParameters takes zero_fill for gradients of 65536 elements or more, which a
        # model's first rows do not tell: compile it for the gradients' dtypes.
        for dtype in {grad.dtype for grad in _flatten(model.getGradParameters())}:
            if dtype in (np.float32, np.float64):
                K.zero_fill(np.ones(1, dtype))
        if optimizers and model.getParameters():
            params, grads = model.getParameters(), model.getGradParameters()
            sgd_momentum(params, grads, {"learning_rate": 0.0, "momentum": 0.0}, {})
            adam_optimizer(params, grads, {"learning_rate": 0.0, "beta1": 0.9, "beta2": 0.999,
                                           "epsilon": 1e-8}, {})
    finally:
        _compile_both.reset(token)
