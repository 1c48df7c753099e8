"""The memory floors inside the asv suite's MLP training step (784-256-256-10, batch 128):
adam_optimizer against a kernel making the same reads and writes with no arithmetic to speak
of, run in the same place of the step (alternate steps), and zeroGradParameters, in
microseconds (medians over the steps). What is left of a step beside its matrix products
(tools/mlp_step_timing.py) cannot go below these two.

    python tools/step_floors.py [--steps 800]     # from the repository root
"""
import argparse
import os
import statistics
import sys
import time

import numba
import numpy as np
from numba import prange

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import nnjit  # noqa: E402
from benchmarks.bench_training import ADAM, BATCH  # noqa: E402
from benchmarks.common import MLP_SIZES, nnjit_mlp, random_batch, random_labels  # noqa: E402
from nnjit.kernels._config import FASTMATH  # noqa: E402
from nnjit.optim import _pairs  # noqa: E402


@numba.njit(parallel=True, fastmath=FASTMATH, nogil=True)
def same_bytes_as_adam(variable, gradient, m, v, zero):
    """Adam's reads (variable, gradient, m, v) and writes (variable, m, v), adding zero."""
    for k in prange(variable.shape[0]):
        g = gradient[k] * zero
        m[k] = m[k] + g
        v[k] = v[k] + g
        variable[k] = variable[k] + g


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=800)
    args = parser.parse_args()
    for dtype in ("float32", "float64"):
        x = random_batch((BATCH, MLP_SIZES[0]), dtype, scale=1.0)
        labels = random_labels(BATCH, MLP_SIZES[-1])
        model, criterion, state = nnjit_mlp(dtype), nnjit.ClassNLLCriterion(log_input=True), {}
        model.train()
        model.input_gradient = False
        zero = np.dtype(dtype).type(0)
        times = {"adam_optimizer": [], "the same bytes": [], "zeroGradParameters": []}
        for step in range(args.steps):
            start = time.perf_counter()
            model.zeroGradParameters()
            times["zeroGradParameters"].append(time.perf_counter() - start)
            output = model.forward(x)
            criterion.forward(output, labels)
            model.backward(x, criterion.backward(output, labels))
            parameters, gradients = model.getParameters(), model.getGradParameters()
            if step % 2 or not state:  # (the first step makes Adam's m and v)
                start = time.perf_counter()
                nnjit.adam_optimizer(parameters, gradients, ADAM, state)
                times["adam_optimizer"].append(time.perf_counter() - start)
            else:
                pairs = _pairs(parameters, gradients, "step_floors")
                start = time.perf_counter()
                for index, variable, gradient in pairs:
                    same_bytes_as_adam(variable, gradient, state["m"][index], state["v"][index],
                                       zero)
                times["the same bytes"].append(time.perf_counter() - start)
        print(f"{dtype}: " + ", ".join(
            f"{name} {statistics.median(values[len(values) // 8:]) * 1e6:.0f} us"
            for name, values in times.items()), flush=True)


if __name__ == "__main__":
    main()
