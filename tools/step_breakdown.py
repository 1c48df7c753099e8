"""Where the asv suite's MLP training step (784-256-256-10, batch 128, Adam) spends its time:
each call of the step timed inside the step, and beside it the same call repeated back to back
(its data hot in the caches, the threads awake), medians in microseconds.

    python tools/step_breakdown.py [--dtype float32] [--steps 600]   # from the repository root

The step runs as the benchmark runs it (zeroGradParameters, forward, the criterion, backward
without the first input gradient, adam_optimizer), one call at a time so each can be timed;
the Linear rows also give the time of their matrix products (np.matmul, and the GEMM calls
that add a weight gradient in place, kernels/_blas.py) inside the call.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import nnjit  # noqa: E402
import nnjit.kernels._blas as blas  # noqa: E402
import nnjit.kernels.linear as kernels_linear  # noqa: E402
import nnjit.linear as linear_module  # noqa: E402
from benchmarks.bench_training import ADAM, BATCH  # noqa: E402
from benchmarks.common import MLP_SIZES, nnjit_mlp, random_batch, random_labels  # noqa: E402


class _TimedMatmul:
    """numpy as the Linear modules see it, with matmul timed into ``seconds``; add_product (the
    in-place GEMM) timed into the same."""

    def __init__(self):
        self.seconds = 0.0
        self._add_product = blas.add_product

    def add_product(self, *args, **kwargs):
        start = time.perf_counter()
        result = self._add_product(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        return result

    def __getattr__(self, name):
        return getattr(np, name)

    def matmul(self, *args, **kwargs):
        start = time.perf_counter()
        result = np.matmul(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        return result


def _median_us(times):
    return statistics.median(times) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()

    matmul = _TimedMatmul()
    kernels_linear.np = linear_module.np = matmul
    blas.add_product = matmul.add_product
    x = random_batch((BATCH, MLP_SIZES[0]), args.dtype, scale=1.0)
    labels = random_labels(BATCH, MLP_SIZES[-1])
    model, criterion, state = nnjit_mlp(args.dtype), nnjit.ClassNLLCriterion(log_input=True), {}
    model.train()
    model.input_gradient = False
    modules = model.modules
    inputs = [x] + [None] * (len(modules) - 1)

    # name -> (the call, as the step makes it), filled as the step runs
    calls, in_step, products = {}, {}, {}

    def timed(name, call):
        matmul.seconds = 0.0
        start = time.perf_counter()
        result = call()
        in_step.setdefault(name, []).append(time.perf_counter() - start)
        products.setdefault(name, []).append(matmul.seconds)
        calls[name] = call
        return result

    step_times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        timed("zeroGradParameters", model.zeroGradParameters)
        h = x
        for i, m in enumerate(modules):
            inputs[i] = h
            h = timed(f"forward {i} {m!r}", lambda m=m, h=h: m.forward(h))
        output = h
        timed("criterion forward", lambda: criterion.forward(output, labels))
        grad = timed("criterion backward", lambda: criterion.backward(output, labels))
        for i in reversed(range(len(modules))):
            m = modules[i]
            if i == 0:  # input_gradient = False: the parameter gradients only
                timed(f"backward 0 {m!r} (parameters only)",
                      lambda m=m, g=grad: m.accGradParameters(inputs[0], g))
            else:
                grad = timed(f"backward {i} {m!r}",
                             lambda m=m, x_i=inputs[i], g=grad: m.backward(x_i, g))
        timed("adam_optimizer", lambda: nnjit.adam_optimizer(
            model.getParameters(), model.getGradParameters(), ADAM, state))
        step_times.append(time.perf_counter() - start)

    warm = args.steps // 6
    print(f"MLP 784-256-256-10, batch 128, {args.dtype}: step "
          f"{_median_us(step_times[warm:]):.0f} us (medians over {args.steps - warm} steps)")
    print(f"{'call':48s} {'in step':>9s} {'of it BLAS':>11s} {'alone':>8s}")
    total_in_step = total_blas = 0.0
    for name, call in calls.items():
        in_step_us = _median_us(in_step[name][warm:])
        blas_us = _median_us(products[name][warm:])
        alone = []
        for _ in range(max(args.steps // 3, 20)):
            start = time.perf_counter()
            call()
            alone.append(time.perf_counter() - start)
        total_in_step += in_step_us
        total_blas += blas_us
        blas_part = f"{blas_us:11.1f}" if blas_us else f"{'':11s}"
        print(f"{name:48s} {in_step_us:9.1f} {blas_part} {_median_us(alone[3:]):8.1f}")
    print(f"{'sum':48s} {total_in_step:9.1f} {total_blas:11.1f}")


if __name__ == "__main__":
    main()
