"""LogSoftMax backward at 256x1000 against its own write pass: the module call, the one pass the
op cannot avoid (read the output and the gradient, an exp, write: grad - exp(y) * row sum, the
row sums given), and torch's ATen op; needs is torch / 1.25. needs/fused under 1: the goal is
under the write pass alone, before the op's read of the gradient for its row sums.

    python tools/log_softmax_backward_floor.py   # needs torch
"""
import os
import sys

import numba
import numpy as np
from numba import prange

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import median_seconds  # noqa: E402

import nnjit  # noqa: E402
from nnjit.kernels._config import FASTMATH  # noqa: E402
from nnjit.kernels._vmath import vexp_nonpositive  # noqa: E402

try:
    import torch
except ImportError:
    sys.exit("tools/log_softmax_backward_floor.py compares with torch: pip install torch==2.13.0")


@numba.njit(parallel=True, fastmath=FASTMATH)
def fused_pass(y, g, s, out):  # the op's write pass alone: read two, exp, write one (row sums given)
    for i in prange(y.shape[0]):
        si = s[i]
        for j in range(y.shape[1]):
            out[i, j] = g[i, j] - vexp_nonpositive(y[i, j]) * si


def main():
    torch.set_num_threads(numba.get_num_threads())
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((256, 1000)).astype(dtype)
        g = rng.standard_normal((256, 1000)).astype(dtype)
        m = nnjit.LogSoftMax()
        y = m.forward(x).copy()
        s = g.sum(1)
        out = np.empty_like(x)
        ty, tg = torch.from_numpy(y), torch.from_numpy(g)
        cases = {"module": lambda: m.updateGradInput(x, g),
                 "fused pass": lambda: fused_pass(y, g, s, out),
                 "torch aten": lambda: torch.ops.aten._log_softmax_backward_data(tg, ty, 1, ty.dtype)}
        for call in cases.values():
            call()  # compile and warm up
        res = {k: [] for k in cases}
        for _ in range(7):
            for k, f in cases.items():
                res[k].append(median_seconds(f, 300) * 1e6)
        med = {k: float(np.median(v)) for k, v in res.items()}
        print(np.dtype(dtype).name, "256x1000", "  ".join(f"{k} {v:.1f}" for k, v in med.items()),
              f" needs {med['torch aten'] / 1.25:.1f}  needs/fused {med['torch aten'] / 1.25 / med['fused pass']:.2f}")


if __name__ == "__main__":
    main()
