"""How far the memory-bound ops are from moving their bytes at all: each op through the module
API, beside the same op in torch, beside a plain 2-thread kernel that moves the same bytes on
each library (a copy for one array read and one written, an add for two read, a fill for one
written). When both libraries run at their own floor, the ratio between them is the ratio of
the floors, which no op code can change.

    python tools/memory_floor.py [--dtype float32] [--shapes 256x1000 4096x1024]   # needs torch

Interleaved over five rounds in one process; medians of the per-round medians, in us.
Columns: nnjit (module call), floor (its library's 2-thread kernel on the same bytes),
op/floor; the same three for torch (ATen op, no autograd); torch/nnjit.
"""
import argparse
import os
import statistics
import sys

import numba
import numpy as np
from numba import prange

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import median_seconds, shape_argument  # noqa: E402

import nnjit  # noqa: E402


@numba.njit(parallel=True)
def _copy(a, out):
    for k in prange(a.shape[0]):
        out[k] = a[k]


@numba.njit(parallel=True)
def _add(a, b, out):
    for k in prange(a.shape[0]):
        out[k] = a[k] + b[k]


@numba.njit(parallel=True)
def _fill(out):
    for k in prange(out.shape[0]):
        out[k] = 0


def _cases(torch, dtype, n, c):
    """name -> (nnjit call, nnjit floor, torch call, torch floor)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c)).astype(dtype)
    g = rng.standard_normal((n, c)).astype(dtype)
    labels = rng.integers(0, c, n)
    out = np.empty_like(x)
    flat = (x.reshape(-1), g.reshape(-1), out.reshape(-1))
    tx, tg, tout, tlabels = (torch.from_numpy(a) for a in (x, g, out, labels))
    ts = torch.softmax(tx, 1)
    tlog = torch.log_softmax(tx, 1)
    one = torch.ones((), dtype=tx.dtype)
    aten = torch.ops.aten

    copy = (lambda: _copy(flat[0], flat[2]), lambda: tout.copy_(tx))
    add = (lambda: _add(flat[0], flat[1], flat[2]), lambda: torch.add(tx, tg, out=tout))
    fill = (lambda: _fill(flat[2]), lambda: tout.zero_())

    def module_pass(module, backward):
        module.forward(x)
        if backward:
            return lambda: module.updateGradInput(x, g)
        return lambda: module.updateOutput(x)

    nll = nnjit.ClassNLLCriterion(log_input=True)
    log_p = tlog.numpy()
    nll.forward(log_p, labels)
    yield "leaky_relu_fwd", module_pass(nnjit.LeakyReLU(0.03), False), copy[0], \
        (lambda: torch.nn.functional.leaky_relu(tx, 0.03)), copy[1]
    yield "leaky_relu_bwd", module_pass(nnjit.LeakyReLU(0.03), True), add[0], \
        (lambda: aten.leaky_relu_backward(tg, tx, 0.03, False)), add[1]
    yield "softmax_bwd", module_pass(nnjit.SoftMax(), True), add[0], \
        (lambda: torch._softmax_backward_data(tg, ts, 1, ts.dtype)), add[1]
    yield "log_softmax_bwd", module_pass(nnjit.LogSoftMax(), True), add[0], \
        (lambda: torch._log_softmax_backward_data(tg, tlog, 1, tlog.dtype)), add[1]
    yield "nll_log_labels_bwd", (lambda: nll.updateGradInput(log_p, labels)), fill[0], \
        (lambda: aten.nll_loss_backward(one, tlog, tlabels, None, 1, -100, one)), fill[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--shapes", nargs="+", type=shape_argument, default=[(256, 1000), (4096, 1024)])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(numba.get_num_threads())
    print(f"threads: numba {numba.get_num_threads()}, torch {torch.get_num_threads()}; "
          f"dtype {args.dtype}; us, medians over {args.rounds} interleaved rounds")
    print(f"{'op':20s} {'shape':>10s} {'nnjit':>8s} {'floor':>8s} {'op/floor':>8s} "
          f"{'torch':>8s} {'floor':>8s} {'op/floor':>8s} {'torch/nnjit':>11s}")
    for n, c in args.shapes:
        calls = max(20, min(300, 30_000_000 // (n * c)))
        for name, *timed in _cases(torch, np.dtype(args.dtype), n, c):
            rounds = [[] for _ in timed]
            for _ in range(args.rounds):
                for times, call in zip(rounds, timed):
                    times.append(median_seconds(call, calls) * 1e6)
            ours, our_floor, theirs, their_floor = (statistics.median(t) for t in rounds)
            print(f"{name:20s} {f'{n}x{c}':>10s} {ours:8.1f} {our_floor:8.1f} "
                  f"{ours / our_floor:8.2f} {theirs:8.1f} {their_floor:8.1f} "
                  f"{theirs / their_floor:8.2f} {theirs / ours:11.2f}", flush=True)


if __name__ == "__main__":
    main()
