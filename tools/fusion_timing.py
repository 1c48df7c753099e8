"""Sequential's LeakyReLU-then-Dropout pair run as one kernel each way, against the two modules
in turn (the fusion switched off in the same process), alternated over rounds: the pair's
forward and backward alone, then the asv suite's MLP training step (784-256-256-10, batch
128, Adam), whose two hidden layers end in the pair.

    python tools/fusion_timing.py [--rounds 4]     # from the repository root
"""
import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import nnjit  # noqa: E402
import nnjit.containers as containers  # noqa: E402
from _timing import median_seconds  # noqa: E402
from benchmarks.bench_training import MLPTrainingStep  # noqa: E402

FUSED = containers._fused_pair


def _alternated(call, calls, rounds):
    """{"in turn": us, "fused": us}: medians over rounds, the two taking turns."""
    times = {"in turn": [], "fused": []}
    for _ in range(rounds):
        for way in times:
            containers._fused_pair = FUSED if way == "fused" else (lambda first, second: False)
            times[way].append(median_seconds(call, calls) * 1e6)
    containers._fused_pair = FUSED
    return {way: statistics.median(values) for way, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    for dtype in ("float32", "float64"):
        for shape in ((64, 10), (128, 256), (256, 1000), (4096, 1024)):
            x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
            grad = np.ones(shape, dtype)
            pair = nnjit.Sequential(nnjit.LeakyReLU(), nnjit.Dropout(0.5))

            def forward_backward(pair=pair, x=x, grad=grad):
                pair.forward(x)
                pair.backward(x, grad)
            calls = 2000 if x.size < 100_000 else 200
            times = _alternated(forward_backward, calls, args.rounds)
            print(f"LeakyReLU + Dropout forward and backward, {dtype} {shape[0]}x{shape[1]}: "
                  f"in turn {times['in turn']:.1f} us, fused {times['fused']:.1f} us, "
                  f"{times['in turn'] / times['fused']:.2f}x", flush=True)
        bench = MLPTrainingStep()
        bench.setup(dtype, "numba")
        times = _alternated(bench.step, 300, args.rounds)
        print(f"MLP training step, {dtype}: in turn {times['in turn']:.0f} us, fused "
              f"{times['fused']:.0f} us, {times['in turn'] / times['fused']:.3f}x", flush=True)


if __name__ == "__main__":
    main()
