"""nnjit: Torch7-style neural-network layers whose math runs as Numba kernels.

    import nnjit
    model = nnjit.Sequential(nnjit.Linear(784, 100), nnjit.ReLU(), nnjit.Linear(100, 10),
                             nnjit.LogSoftMax())
    criterion = nnjit.ClassNLLCriterion(log_input=True)

Every module computes with the backend in force: "numba" (default) or "numpy", chosen with
``set_backend``, ``with backend(...)`` or the NNJIT_BACKEND environment variable.
"""
from ._backend import BACKENDS, backend, get_backend, set_backend
from .activations import ELU, LeakyReLU, ReLU, SoftPlus
from .containers import Sequential
from .criterions import (ClassNLLCriterion, ClassNLLCriterionUnstable, CrossEntropyCriterion,
                         MSECriterion)
from .dropout import Dropout
from .linear import Linear
from .module import Criterion, Module
from .normalization import BatchNormalization, ChannelwiseScaling
from .optim import adam_optimizer, sgd_momentum
from .reshape import Flatten
from .serialize import load, save
from .softmax import LogSoftMax, SoftMax
from .warmup import warmup

__version__ = "0.1.0"

__all__ = [
    "BACKENDS", "backend", "get_backend", "set_backend", "warmup",
    "Module", "Sequential", "Criterion",
    "Linear", "SoftMax", "LogSoftMax", "BatchNormalization", "ChannelwiseScaling", "Dropout",
    "ReLU", "LeakyReLU", "ELU", "SoftPlus", "Flatten",
    "MSECriterion", "ClassNLLCriterion", "ClassNLLCriterionUnstable", "CrossEntropyCriterion",
    "sgd_momentum", "adam_optimizer", "save", "load",
]
