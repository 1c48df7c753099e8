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
    (tools/blas_spin.py: a CNN training step 12.2 against 7.0 ms). OpenBLAS reads
    OPENBLAS_THREAD_TIMEOUT (2**value cycles, 4 to 30) into its settings as it loads, and its
    threads take it when they start: default it to 4 (sleep at once) unless the user set it.
    When NumPy, which loads OpenBLAS, is imported already, its threads are restarted to take it
    (docs/threads.md)."""
    if "OPENBLAS_THREAD_TIMEOUT" in _os.environ:
        return
    if "numpy" not in _sys.modules:
        _os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
    else:
        _restart_loaded_openblas_threads("4")


def _restart_loaded_openblas_threads(timeout):
    """Have each loaded OpenBLAS (pthreads build) read OPENBLAS_THREAD_TIMEOUT again
    (openblas_read_env) and stop its threads (blas_thread_shutdown_, what OpenBLAS itself runs
    before every fork); the next threaded call starts them with the new timeout. Only while
    this is the process's only Python thread: a restart during another thread's BLAS call
    could hang it. Linux only (the loaded libraries are read from /proc/self/maps); anywhere
    else, or if anything is missing, OpenBLAS is left as it is."""
    import ctypes
    import threading
    if threading.active_count() != 1:
        return
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[-1].strip() for line in maps
                     if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return
    libraries = []
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        if all(hasattr(library, name) for name in
               ("openblas_read_env", "blas_thread_shutdown_", "gotoblas_pthread")):
            libraries.append(library)
    if not libraries:
        return
    _os.environ["OPENBLAS_THREAD_TIMEOUT"] = timeout
    for library in libraries:
        library.openblas_read_env()
        library.blas_thread_shutdown_()


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
