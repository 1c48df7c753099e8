"""The asv suite's MLP training step (784-256-256-10: Linear, LeakyReLU, Dropout, LogSoftMax,
NLL, Adam; batch 128) on nnjit and on torch (fused Adam), interleaved over three rounds in one
process; medians of 200 steps. Also the step's eight matrix products alone (np.matmul at the
same shapes, as Linear calls them; the first Linear's input gradient is not computed, on either
side: nnjit's model has input_gradient = False, torch's input no requires_grad): the BLAS time
inside nnjit's step, and torch's step time over it, the ratio nnjit could reach if everything
but BLAS took no time. Then the same eight
products in torch (its own BLAS), and what the step's 1.5x goal leaves for everything else:
torch's step / 1.5 less nnjit's products, against what the rest takes in nnjit's step.

    python tools/mlp_step_timing.py        # run from the repository root; needs torch
"""
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _timing import median_seconds  # noqa: E402
from benchmarks.bench_training import BATCH, MLPTrainingStep  # noqa: E402
from benchmarks.common import MLP_SIZES, import_torch  # noqa: E402


def matrix_products(dtype, torch=None):
    """The step's products: forward x @ W.T, gradInput g @ W (not for the first Linear), gradW
    g.T @ x; with numpy's BLAS, or torch's when torch is given (on the same memory)."""
    rng = np.random.default_rng(0)
    shapes = list(zip(MLP_SIZES[:-1], MLP_SIZES[1:]))
    weights = [rng.standard_normal((n_out, n_in)).astype(dtype) for n_in, n_out in shapes]
    inputs = [rng.standard_normal((BATCH, n_in)).astype(dtype) for n_in, _ in shapes]
    grads = [rng.standard_normal((BATCH, n_out)).astype(dtype) for _, n_out in shapes]
    outs = [(np.empty_like(g), np.empty_like(x), np.empty_like(w))
            for w, x, g in zip(weights, inputs, grads)]

    matmul = np.matmul
    if torch is not None:
        weights, inputs, grads = ([torch.from_numpy(a) for a in arrays]
                                  for arrays in (weights, inputs, grads))
        outs = [tuple(torch.from_numpy(a) for a in triple) for triple in outs]
        matmul = torch.matmul

    def products():
        for layer, (w, x, g, (out, grad_input, grad_weight)) in enumerate(
                zip(weights, inputs, grads, outs)):
            matmul(x, w.T, out=out)
            if layer > 0:
                matmul(g, w, out=grad_input)
            matmul(g.T, x, out=grad_weight)
    return products


for dtype in ("float32", "float64"):
    rounds = {"numba": [], "torch": []}
    for _ in range(3):
        for backend in ("numba", "torch"):
            bench = MLPTrainingStep()
            bench.setup(dtype, backend)
            rounds[backend].append(median_seconds(bench.step, 200))
        rounds.setdefault("blas", []).append(median_seconds(matrix_products(dtype), 200))
        rounds.setdefault("torch blas", []).append(
            median_seconds(matrix_products(dtype, import_torch()), 200))
    ours, theirs, blas, torch_blas = (statistics.median(rounds[k]) * 1e3
                                      for k in ("numba", "torch", "blas", "torch blas"))
    print(f"MLP 784-256-256-10 training step, batch 128, {dtype}: nnjit {ours:.2f} ms, "
          f"torch {theirs:.2f} ms, torch/nnjit {theirs / ours:.2f}; its matrix products alone "
          f"{blas:.2f} ms (torch / that {theirs / blas:.2f}); the same products in torch "
          f"{torch_blas:.2f} ms; the 1.5x goal leaves {theirs / 1.5 - blas:.2f} ms beside "
          f"nnjit's products, where the rest of its step takes {ours - blas:.2f}")
