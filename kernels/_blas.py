"""c += a @ b in one BLAS call, through NumPy's own OpenBLAS.

np.matmul writes its product into ``out``; it cannot add it to what ``out`` holds, which BLAS's
GEMM does when called with beta = 1. A weight gradient accumulates: with np.matmul it takes
the product into a buffer and an add (a read of the gradient, of the buffer, and a write), or,
right after zeroGradParameters, a scan that the gradient is still all zeros before the product
writes it. Called directly, GEMM adds the product as it stores it: in the 784-256-256-10 MLP
training step (float32, batch 128) the first Linear's gradient took 228 us instead of 335
(tools/step_breakdown.py; docs/performance.md).

NumPy's Linux, macOS and Windows wheels carry OpenBLAS built for 64-bit integers (ILP64), with
its C interface under the names ``scipy_cblas_sgemm64_`` and ``scipy_cblas_dgemm64_``. Only
names with the ILP64 suffix are taken, so the integer width of the arguments is known; where
NumPy has another BLAS (Accelerate, MKL, a 32-bit-integer OpenBLAS), add_product declines and
its callers take np.matmul.
"""
import ctypes
import glob
import os
import threading

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_GEMM_NAMES = ("scipy_cblas_{}gemm64_", "cblas_{}gemm64_")
# A ctypes call costs about 3.5 us beyond np.matmul's; below about a million multiply-adds
# (some 20-40 us of product) callers keep np.matmul.
MIN_MULTIPLY_ADDS = 1 << 20

_lock = threading.Lock()
_gemm = None  # dtype -> the ctypes function, {} when none was found; None until first use


def _candidate_paths():
    """BLAS libraries the process has loaded (Linux), then those in NumPy's wheel."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split(None, 5)[-1].strip()
                if "blas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    numpy_dir = os.path.dirname(np.__file__)
    for pattern in (os.path.join(os.path.dirname(numpy_dir), "numpy.libs", "*blas*"),
                    os.path.join(numpy_dir, ".dylibs", "*blas*")):
        paths += [path for path in sorted(glob.glob(pattern)) if path not in paths]
    return paths


def _find_gemm():
    arguments = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                 ctypes.c_int64, None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                 ctypes.c_int64, None, ctypes.c_void_p, ctypes.c_int64]
    for path in _candidate_paths():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for pattern in _GEMM_NAMES:
            try:
                functions = {np.dtype(np.float32): getattr(library, pattern.format("s")),
                             np.dtype(np.float64): getattr(library, pattern.format("d"))}
            except AttributeError:
                continue
            for dtype, function in functions.items():
                real = ctypes.c_float if dtype.itemsize == 4 else ctypes.c_double
                function.restype = None
                function.argtypes = [real if kind is None else kind for kind in arguments]
            return functions
    return {}


def gemm_functions():
    """dtype -> NumPy's OpenBLAS GEMM (found at first use), or {} if there is none to call."""
    global _gemm
    if _gemm is None:
        with _lock:
            if _gemm is None:
                _gemm = _find_gemm()
    return _gemm


def can_add_product(c, a, b, transpose_a=False):
    """Whether add_product(c, a, b, transpose_a) will add the product itself: NumPy's OpenBLAS
    found; c, a and b 2-D, C-contiguous, aligned and of one dtype, float32 or float64; shapes
    that agree; c writable and apart from a and b; at least MIN_MULTIPLY_ADDS of work."""
    if c.ndim != 2 or a.ndim != 2 or c.size * a.shape[0 if transpose_a else 1] < MIN_MULTIPLY_ADDS:
        return False  # first, as cheaply as it can be told: a small layer's call pays for this
    dtype = c.dtype
    m, n = c.shape
    k = a.shape[0] if transpose_a else a.shape[1]
    if a.dtype is not dtype or b.dtype is not dtype or b.ndim != 2 \
            or (a.shape[1] if transpose_a else a.shape[0]) != m or b.shape != (k, n):
        return False
    flags_c, flags_a, flags_b = c.flags, a.flags, b.flags
    if not (flags_c.c_contiguous and flags_a.c_contiguous and flags_b.c_contiguous
            and flags_c.aligned and flags_a.aligned and flags_b.aligned and flags_c.writeable):
        return False
    if np.may_share_memory(c, a) or np.may_share_memory(c, b):
        return False
    return dtype in gemm_functions()


def add_product(c, a, b, transpose_a=False):
    """c += (a.T if transpose_a else a) @ b by one GEMM call (beta = 1), when can_add_product
    holds; returns whether it did (False: nothing changed, the caller uses np.matmul)."""
    if not can_add_product(c, a, b, transpose_a):
        return False
    m, n = c.shape
    k = b.shape[0]
    gemm_functions()[c.dtype](_ROW_MAJOR, _TRANS if transpose_a else _NO_TRANS, _NO_TRANS,
                              m, n, k, 1.0, a.ctypes.data, a.shape[1], b.ctypes.data, n,
                              1.0, c.ctypes.data, n)
    return True
