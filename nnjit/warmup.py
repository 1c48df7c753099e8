"""Compile up front what a model needs, so the first real batch runs at full speed."""
import copy

import numpy as np

from .kernels._jit import _compile_both
from .optim import adam_optimizer, sgd_momentum


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
            model.zeroGradParameters()
            output = model.forward(sample)
            grad = np.ones_like(output)
            if criterion is not None:
                loss = copy.deepcopy(criterion)
                loss.forward(output, np.asarray(target)[:2])
                grad = loss.backward(output, np.asarray(target)[:2])
            model.backward(sample, grad)
        if optimizers and model.getParameters():
            params, grads = model.getParameters(), model.getGradParameters()
            sgd_momentum(params, grads, {"learning_rate": 0.0, "momentum": 0.0}, {})
            adam_optimizer(params, grads, {"learning_rate": 0.0, "beta1": 0.9, "beta2": 0.999,
                                           "epsilon": 1e-8}, {})
    finally:
        _compile_both.reset(token)
