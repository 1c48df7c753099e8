"""The asv suite's MLP training step (784-256-256-10: Linear, LeakyReLU, Dropout, LogSoftMax,
NLL, Adam; batch 128) on nnjit and on torch (fused Adam), interleaved over three rounds in one
process; medians of 200 steps.

    python tools/mlp_step_timing.py        # run from the repository root; needs torch
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _timing import median_seconds  # noqa: E402
from benchmarks.bench_training import MLPTrainingStep  # noqa: E402

for dtype in ("float32", "float64"):
    rounds = {"numba": [], "torch": []}
    for _ in range(3):
        for backend in rounds:
            bench = MLPTrainingStep()
            bench.setup(dtype, backend)
            rounds[backend].append(median_seconds(bench.step, 200))
    ours, theirs = (statistics.median(rounds[k]) * 1e3 for k in ("numba", "torch"))
    print(f"MLP 784-256-256-10 training step, batch 128, {dtype}: nnjit {ours:.2f} ms, "
          f"torch {theirs:.2f} ms, torch/nnjit {theirs / ours:.2f}")
