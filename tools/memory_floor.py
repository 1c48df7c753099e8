"""Whether 1.25x torch is reachable at all for the ops that stay under it: each op through the
module API, beside the same op in torch, beside the plain 2-thread passes (floors) it cannot
beat on each library: a copy for one array read and one written, an add for two read, a fill
for one written, an exp pass (read, exp, write) for ops that take an exp per element, an
exp-sum (read, exp, add up) for a criterion that writes no array, a gather (one element per
row) for NLL with labels. An op's floor on a library is the largest of its passes there.

    python tools/memory_floor.py [--dtype float32] [--shapes 256x1000 4096x1024]   # needs torch

Interleaved over five rounds in one process; medians of the per-round medians, in us.
Columns: nnjit (module call), floor (its Numba passes), op/floor; the same three for torch
(ATen op, no autograd; "-" where torch has no single op for the pass); torch/nnjit; then
"needs": torch / 1.25, the time nnjit would need for the goal; needs/floor, that time over
the lower of the two libraries' floors: under 1 the goal is below the floor, and no code doing
the op's passes on 2 threads reaches it (the exp at this accuracy, about 1 ulp, as torch's);
and needs/numba, that time over Numba's floor: under 1, no code doing them with Numba's
threading layer (TBB) reaches it. The two floors differ where torch's OpenMP workers, which
spin between ops, join a short pass that TBB's worker, asleep between launches, joins late.
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
from nnjit.kernels._vmath import vexp_nonpositive  # noqa: E402


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


# the exp passes vectorize as the kernels' do: with the kernels' fast-math flags
_fast = numba.njit(parallel=True, fastmath=nnjit.kernels._config.FASTMATH, error_model="numpy")


@_fast
def _exp(a, out):
    for k in prange(a.shape[0]):
        out[k] = vexp_nonpositive(a[k])


@_fast
def _exp_sum(a):
    total = a.dtype.type(0)
    for k in prange(a.shape[0]):
        total += vexp_nonpositive(a[k])
    return total


@numba.njit(parallel=True)
def _gather(x, labels):
    total = x.dtype.type(0)
    for i in prange(x.shape[0]):
        total += x[i, labels[i]]
    return total


def _cases(torch, dtype, n, c):
    """name, nnjit call, torch call, and the floor passes: ((Numba pass, torch pass or None), ...)."""
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

    nonpositive = -np.abs(flat[0])  # vexp_nonpositive's domain; the values do not change its time
    tnonpositive = torch.from_numpy(nonpositive)
    copy = (lambda: _copy(flat[0], flat[2]), lambda: tout.copy_(tx))
    add = (lambda: _add(flat[0], flat[1], flat[2]), lambda: torch.add(tx, tg, out=tout))
    fill = (lambda: _fill(flat[2]), lambda: tout.zero_())
    exp = (lambda: _exp(nonpositive, flat[2]), lambda: torch.exp(tnonpositive, out=tout.view(-1)))
    exp_sum = (lambda: _exp_sum(nonpositive), None)
    gather = (lambda: _gather(x, labels), None)

    def module_pass(module, backward):
        module.forward(x)
        if backward:
            return lambda: module.updateGradInput(x, g)
        return lambda: module.updateOutput(x)

    nll = nnjit.ClassNLLCriterion(log_input=True)
    log_p = tlog.numpy()
    nll.forward(log_p, labels)
    cross_entropy = nnjit.CrossEntropyCriterion()
    yield "leaky_relu_fwd", module_pass(nnjit.LeakyReLU(0.03), False), \
        (lambda: torch.nn.functional.leaky_relu(tx, 0.03)), (copy,)
    yield "leaky_relu_bwd", module_pass(nnjit.LeakyReLU(0.03), True), \
        (lambda: aten.leaky_relu_backward(tg, tx, 0.03, False)), (add,)
    yield "softmax_fwd", module_pass(nnjit.SoftMax(), False), \
        (lambda: torch._softmax(tx, 1, False)), (exp,)
    yield "softmax_bwd", module_pass(nnjit.SoftMax(), True), \
        (lambda: torch._softmax_backward_data(tg, ts, 1, ts.dtype)), (add,)
    yield "log_softmax_fwd", module_pass(nnjit.LogSoftMax(), False), \
        (lambda: torch._log_softmax(tx, 1, False)), (exp,)
    yield "log_softmax_bwd", module_pass(nnjit.LogSoftMax(), True), \
        (lambda: torch._log_softmax_backward_data(tg, tlog, 1, tlog.dtype)), (add, exp)
    yield "nll_log_labels_fwd", (lambda: nll.updateOutput(log_p, labels)), \
        (lambda: aten.nll_loss_forward(tlog, tlabels, None, 1, -100)), (gather,)
    yield "nll_log_labels_bwd", (lambda: nll.updateGradInput(log_p, labels)), \
        (lambda: aten.nll_loss_backward(one, tlog, tlabels, None, 1, -100, one)), (fill,)
    yield "cross_entropy_fwd", (lambda: cross_entropy.updateOutput(x, labels)), \
        (lambda: torch.nn.functional.cross_entropy(tx, tlabels)), (exp_sum,)


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
          f"{'torch':>8s} {'floor':>8s} {'op/floor':>8s} {'torch/nnjit':>11s} "
          f"{'needs':>8s} {'needs/floor':>11s} {'needs/numba':>11s}")
    for n, c in args.shapes:
        calls = max(20, min(300, 30_000_000 // (n * c)))
        for name, ours_call, theirs_call, passes in _cases(torch, np.dtype(args.dtype), n, c):
            timed = [ours_call, theirs_call] + [call for floor in passes for call in floor if call]
            rounds = {call: [] for call in timed}
            for _ in range(args.rounds):
                for call in timed:
                    rounds[call].append(median_seconds(call, calls) * 1e6)
            median = {call: statistics.median(times) for call, times in rounds.items()}
            ours, theirs = median[ours_call], median[theirs_call]
            our_floor = max(median[numba_pass] for numba_pass, _ in passes)
            torch_passes = [torch_pass for _, torch_pass in passes]
            their_floor = None if None in torch_passes else max(median[p] for p in torch_passes)
            needs = theirs / 1.25
            lowest_floor = our_floor if their_floor is None else min(our_floor, their_floor)
            torch_columns = (f"{'-':>8s} {'-':>8s}" if their_floor is None else
                             f"{their_floor:8.1f} {theirs / their_floor:8.2f}")
            print(f"{name:20s} {f'{n}x{c}':>10s} {ours:8.1f} {our_floor:8.1f} "
                  f"{ours / our_floor:8.2f} {theirs:8.1f} {torch_columns} {theirs / ours:11.2f} "
                  f"{needs:8.1f} {needs / lowest_floor:11.2f} {needs / our_floor:11.2f}", flush=True)


if __name__ == "__main__":
    main()
