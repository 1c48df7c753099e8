"""nnjit: Torch7-style neural-network layers whose math runs as Numba kernels.

    import nnjit
    model = nnjit.Sequential(nnjit.Linear(784, 100), nnjit.ReLU(), nnjit.Linear(100, 10),
                             nnjit.LogSoftMax())
    criterion = nnjit.ClassNLLCriterion(log_input=True)

Every module computes with the backend in force: "numba" (default) or "numpy", chosen with
``set_backend``, ``with backend(...)`` or the NNJIT_BACKEND environment variable.
"""
import importlib.util as _importlib_util
import os as _os
import sys as _sys


def _kernels_beside_a_source_tree():
    """In the wheel and in an editable install, ``kernels/`` is ``nnjit.kernels``. Python
    started in a source checkout that was installed without -e imports ``nnjit/`` from the
    tree, where ``kernels/`` sits beside it: load it from there under the same name."""
    if _importlib_util.find_spec(__name__ + ".kernels") is not None:
        return
    folder = _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))), "kernels")
    spec = _importlib_util.spec_from_file_location(
        __name__ + ".kernels", _os.path.join(folder, "__init__.py"),
        submodule_search_locations=[folder])
    if spec is None:
        return
    module = _importlib_util.module_from_spec(spec)
    _sys.modules[spec.name] = module
    spec.loader.exec_module(module)


def _quiet_idle_openblas_threads():
    """After each threaded call OpenBLAS's idle threads busy-wait for 2**28 cycles (about
    0.1 s) before they sleep; on a machine with few cores they hold the core a Numba worker
    needs, and a parallel kernel run within that time goes at serial speed
    (tools/blas_spin.py). OpenBLAS reads OPENBLAS_THREAD_TIMEOUT (2**value cycles, 4 to 30)
    once, as it loads: default it to 4 (sleep at once) unless the user set it or NumPy, which
    loads OpenBLAS, is already imported (docs/threads.md)."""
    if "numpy" not in _sys.modules:
        _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


_quiet_idle_openblas_threads()
_kernels_beside_a_source_tree()

from .kernels import BACKENDS, backend, get_backend, set_backend
from .activations import ELU, LeakyReLU, ReLU, SoftPlus
from .containers import Sequential
from .conv import AvgPool2d, Conv2d, MaxPool2d
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
    "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "SoftMax", "LogSoftMax", "BatchNormalization",
    "ChannelwiseScaling", "Dropout",
    "ReLU", "LeakyReLU", "ELU", "SoftPlus", "Flatten",
    "MSECriterion", "ClassNLLCriterion", "ClassNLLCriterionUnstable", "CrossEntropyCriterion",
    "sgd_momentum", "adam_optimizer", "save", "load",
]
