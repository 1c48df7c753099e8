"""How a kernel is built and called: one Python body, a serial and a parallel Numba variant,
a NumPy twin, and the single dispatch point that picks among them."""
import contextvars
import ctypes
import os
import sys
import threading

import numba
import numpy as np

from . import _cache, _dispatch, _threads
from ._dispatch import get_backend
from ._config import FASTMATH, FASTMATH_ORDERED, LONG_ROW, PARALLEL_MIN_ELEMENTS, ROW_CHUNK

ALL_KERNELS = {}


def _preload_pip_tbb():
    """Make a pip-installed TBB visible to Numba.

    ``pip install tbb`` puts libtbb.so.12 in ``<prefix>/lib``, which the dynamic loader does not
    search, so Numba silently falls back to a layer that is not fork-safe (numba issue #6108).
    Loading it by path with RTLD_GLOBAL first lets Numba's tbbpool resolve it.
    """
    if not sys.platform.startswith("linux"):
        return
    import site

    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, site.getuserbase())):
        path = os.path.join(prefix, "lib", "libtbb.so.12")
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            return


_preload_pip_tbb()


class _ParallelGuard:
    """Parallel launches that can never abort the process.

    TBB and OpenMP accept launches from several Python threads at once. Numba's workqueue
    layer aborts the process when that happens, so under it a launch only goes parallel when
    no other launch is running, and otherwise takes the serial variant (same result).
    """

    THREAD_SAFE_LAYERS = ("tbb", "omp")

    def __init__(self):
        self._forget()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self):
        """New locks (a fork copies them as they were) and, in a forked child, a first launch
        again: the child's TBB has new workers to bind."""
        self._first_launch = threading.Lock()
        self._busy = threading.Lock()
        self.layer = None
        _threads.forget()

    def run(self, parallel, serial, args):
        if self.layer is None:
            with self._first_launch:
                if self.layer is None:
                    result = self._run_exclusive(parallel, args)
                    layer = numba.threading_layer()
                    _threads.bind_workers(layer)
                    self.layer = layer
                    return result
        if self.layer in self.THREAD_SAFE_LAYERS:
            _threads.follow_caller()
            return parallel(*args)
        if self._busy.acquire(blocking=False):
            try:
                return parallel(*args)
            finally:
                self._busy.release()
        return serial(*args)

    def _run_exclusive(self, parallel, args):
        with self._busy:
            return parallel(*args)


PARALLEL_GUARD = _ParallelGuard()

# Set by nnjit.warmup(): every call then compiles and runs both variants.
_compile_both = contextvars.ContextVar("nnjit_compile_both", default=False)


class Kernel:
    """One op on both paths. Calling it follows the backend in force (``nnjit.set_backend``);
    ``.numba`` and ``.numpy`` force a path, with the same signature and semantics."""

    def __init__(self, name, numba_impl, doc=None):
        self.__name__ = self.name = name
        self.__doc__ = doc
        self.numba = numba_impl
        self.numpy = None
        ALL_KERNELS[name] = self

    def numpy_twin(self, func):
        """Decorator registering the NumPy twin of this kernel."""
        self.numpy = func
        return self

    def __call__(self, *args):
        if get_backend() == "numpy":
            return self.numpy(*args)
        return self.numba(*args)

    def __repr__(self):
        return f"<nnjit kernel {self.name}>"


def _njit(func, parallel, fastmath):
    """numba.njit with the house options, and nnjit's compiled-kernel cache (see _cache.py),
    keyed on these options."""
    dispatcher = numba.njit(parallel=parallel, fastmath=fastmath, error_model="numpy",
                            nogil=True)(func)
    return _cache.attach(dispatcher, (parallel, tuple(sorted(fastmath)), "numpy", True))


def jit(func):
    """A serial helper compiled with the house flags, callable from kernels."""
    return _njit(func, False, FASTMATH)


def ordered_jit(func):
    """A serial helper whose floating-point operations keep the order they are written in."""
    return _njit(func, False, FASTMATH_ORDERED)


@jit
def n_row_chunks(n_rows):
    """How many ROW_CHUNK-row tasks a batch reduction over n_rows rows splits into."""
    return max((n_rows + ROW_CHUNK - 1) // ROW_CHUNK, 1)


@jit
def row_chunk(chunk, n_rows):
    """(start, stop) rows of task ``chunk``."""
    start = chunk * ROW_CHUNK
    return start, min(start + ROW_CHUNK, n_rows)


@jit
def add_rows(x, start, stop, acc):
    """acc (c,) += rows start..stop of x (n, c), row after row (memory in order)."""
    for i in range(start, stop):
        row = x[i]
        for j in range(acc.shape[0]):
            acc[j] += row[j]


# Allocations and serial combines of the parallel kernels live in these helpers: inside a
# parallel=True body, np.zeros and slice assignments become parallel loops of their own, each
# compiled separately (the batch-norm kernels' first call took 5 s).
@jit
def zeroed(rows, columns, like):
    """np.zeros((rows, columns)) of like's dtype."""
    return np.zeros((rows, columns), like.dtype)


@jit
def zeroed3(blocks, rows, columns, like):
    """np.zeros((blocks, rows, columns)) of like's dtype."""
    return np.zeros((blocks, rows, columns), like.dtype)


@jit
def float64_column_sums(partial):
    """partial (chunks, c) summed over chunks in chunk order, as a new float64 (c,) array."""
    out = np.zeros(partial.shape[1])
    add_partials(partial, out)
    return out


@jit
def add_partials(partial, out):
    """out (c,) += partial (chunks, c) summed over chunks in chunk order: the batch reductions'
    combine, in a fixed order so the result does not depend on the thread count."""
    for chunk in range(partial.shape[0]):
        for j in range(partial.shape[1]):
            out[j] += partial[chunk, j]


# What Numba raises for arguments a kernel cannot take: a typing error as it compiles for a
# list or a mix of dtypes, or, at run time, the reshape of a strided array by an element-wise
# kernel (NotImplementedError) or of one of another size (ValueError). The kernels themselves
# raise nothing.
NUMBA_REFUSALS = (numba.core.errors.TypingError, NotImplementedError, ValueError, AttributeError)


def refused(name, args, error):
    """The error for arguments the Numba path refused: it names the kernel, describes the
    arguments and says what the kernel takes (ValueError for layouts and shapes, TypeError for
    the rest), with Numba's own error chained."""
    def describe(value):
        if isinstance(value, np.ndarray):
            layout = "" if value.flags.c_contiguous else ", not C-contiguous"
            return f"{value.dtype} array {value.shape}{layout}"
        return type(value).__name__

    strided = any(isinstance(a, np.ndarray) and not a.flags.c_contiguous for a in args)
    kind = ValueError if strided or isinstance(error, (NotImplementedError, ValueError)) \
        else TypeError
    lines = str(error).strip().splitlines()
    return kind(f"nnjit kernel {name}({', '.join(describe(a) for a in args)}): the Numba path "
                f"cannot take these arguments ({lines[0] if lines else type(error).__name__}); "
                f"it takes C-contiguous arrays of the dtypes and shapes that "
                f"help(nnjit.kernels.{name}) gives")


def kernel(size_arg=0, parallel_min=PARALLEL_MIN_ELEMENTS, long_rows=None):
    """Decorator: compile a prange body twice, serial and parallel, behind one Kernel.

    The parallel variant runs when ``args[size_arg]`` has at least ``parallel_min`` elements
    (one of the thresholds of _config.py); ``size_arg`` may be a tuple of positions, for a
    kernel whose work follows the largest of several arrays (a convolution's follows its input
    or its output, whichever has more channels), or a function of the tuple of arguments giving
    the work to compare with ``parallel_min``. Both variants compile lazily on first use, never
    at import.

    ``long_rows``: another kernel of the same arguments and result, run instead of the
    parallel variant when the first argument has LONG_ROW or more columns (rows compiled for
    wider vectors, _config.py). A kernel of its own, so that only a process that meets such
    rows compiles it; small inputs keep the serial variant, which was as fast or faster.
    """
    if callable(size_arg):
        first, single, size = None, False, size_arg
    else:
        positions = size_arg if isinstance(size_arg, tuple) else (size_arg,)
        first, single = positions[0], len(positions) == 1

        def size(args):
            return max(args[i].size for i in positions)

    def wrap(body):
        serial = _njit(body, False, FASTMATH)
        parallel = _njit(body, True, FASTMATH)

        def run(*args):
            try:
                if _compile_both.get():
                    PARALLEL_GUARD.run(parallel, serial, args)
                    if long_rows is not None and args[0].shape[1] >= LONG_ROW:
                        long_rows.numba(*args)
                    return serial(*args)
                if (args[first].size if single else size(args)) >= parallel_min:
                    if long_rows is not None and args[0].shape[1] >= LONG_ROW:
                        return long_rows.numba(*args)
                    return PARALLEL_GUARD.run(parallel, serial, args)
                return serial(*args)
            except NUMBA_REFUSALS as error:
                raise refused(body.__name__, args, error) from error

        # Kernel.__call__ and run in one frame, reading no attributes: a small call is mostly
        # this Python (0.61 against 0.75 us for the two-frame call, of a 2.3 us 64x10 module call)
        local_backend, compile_both = _dispatch._local_backend.get, _compile_both.get

        def dispatch(*args):
            if (local_backend() or _dispatch._global_backend) == "numpy":
                return k.numpy(*args)
            try:  # free in Python 3.11 until something raises
                if (args[first].size if single else size(args)) < parallel_min \
                        and not compile_both():
                    return serial(*args)
            except NUMBA_REFUSALS as error:
                raise refused(body.__name__, args, error) from error
            return run(*args)

        k = type("Kernel", (Kernel,), {"__call__": staticmethod(dispatch)})(
            body.__name__, run, body.__doc__)
        k.serial, k.parallel = serial, parallel
        return k

    return wrap


def composite(func):
    """Decorator: a kernel whose Numba path is Python calling BLAS and jitted helpers."""
    return Kernel(func.__name__, func, func.__doc__)
