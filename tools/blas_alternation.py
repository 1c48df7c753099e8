"""Why Conv2d's BLAS path is slow here: building column chunks (a Numba function) and
multiplying them (OpenBLAS) cost more interleaved than apart.

    python tools/blas_alternation.py
    OPENBLAS_NUM_THREADS=1 python tools/blas_alternation.py
"""
import statistics
import time

import numpy as np

from _timing import median_seconds
from nnjit.kernels import conv as C

rng = np.random.default_rng(0)
x = rng.standard_normal((64, 16, 14, 14)).astype(np.float32)
matrix = rng.standard_normal((32, 16 * 3 * 3)).astype(np.float32)
CHUNK = 9  # images per 1 MB chunk of columns, as kernels/conv.py picks for this layer
columns = np.empty((144, CHUNK * 196), np.float32)
product = np.empty((32, CHUNK * 196), np.float32)
FIRSTS = range(0, 64, CHUNK)


def build(first):
    C._im2col(x, first, min(first + CHUNK, 64), 3, 3, 1, 1, 1, 1, 14, 14, columns)


def multiply():
    np.matmul(matrix, columns, out=product)


def ms(call):
    return median_seconds(call, 20, warmup=3) * 1e3


apart = ms(lambda: [build(f) for f in FIRSTS]), ms(lambda: [multiply() for _ in FIRSTS])
together = ms(lambda: [(build(f), multiply()) for f in FIRSTS])
parts = [], []
for _ in range(20):
    for first in FIRSTS:
        start = time.perf_counter()
        build(first)
        middle = time.perf_counter()
        multiply()
        parts[0].append(middle - start)
        parts[1].append(time.perf_counter() - middle)
print(f"8 chunks: columns alone {apart[0]:.2f} ms, GEMMs alone {apart[1]:.2f} ms, "
      f"interleaved {together:.2f} ms (per chunk inside the loop: columns "
      f"{statistics.median(parts[0]) * 1e3:.3f} ms, GEMM {statistics.median(parts[1]) * 1e3:.3f} ms)")
