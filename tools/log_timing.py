"""The kernels' logs, serial, per entry: np.log inside a Numba loop (a libm call per entry),
_vmath.vlog and _vmath.vlog_normal (vectorized), and NumPy's np.log on the whole array, over
256k probabilities in [1e-3, 1], each dtype; median of 200 passes (tools/_timing.py),
three rounds in turn.

    python tools/log_timing.py
"""
import os
import statistics
import sys

import numba
import numpy as np

from nnjit.kernels import _vmath
from nnjit.kernels._config import FASTMATH

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import median_seconds  # noqa: E402


def _loop(log):
    @numba.njit(fastmath=FASTMATH, error_model="numpy")
    def apply(x, out):
        for k in range(x.size):
            out[k] = log(x[k])
    return apply


CASES = {"np.log in a Numba loop": _loop(np.log), "vlog": _loop(_vmath.vlog),
         "vlog_normal": _loop(_vmath.vlog_normal),
         "NumPy's np.log": lambda x, out: np.log(x, out=out)}


def main():
    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(0).uniform(1e-3, 1, 256_000).astype(dtype)
        out = np.empty_like(x)
        rounds = {name: [] for name in CASES}
        for _ in range(3):
            for name, apply in CASES.items():
                rounds[name].append(median_seconds(lambda: apply(x, out), 200) / x.size * 1e9)
        print(f"{np.dtype(dtype).name}: " + ", ".join(
            f"{name} {statistics.median(v):.2f}" for name, v in rounds.items()) + " ns an entry")


if __name__ == "__main__":
    main()
