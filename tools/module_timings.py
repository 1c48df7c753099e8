"""Per-call times through the module API (what users call), numba path against numpy path,
and torch doing the same work (where installed): its ops for the layers and the criterions
(the probability-form NLL as torch.log then nll_loss, dense targets as a user writes them;
"soft" targets are label-smoothed, every entry non-zero).

    python tools/module_timings.py [name filters ...] [--dtype float32] [--shapes 256x1000 ...]

Each case runs on both backends (and torch), interleaved; three rounds, each a sweep over
all the cases (the machine is noisy), and the table gives the median of each path's per-round
medians and numpy/numba. `nnjit bench`
times the kernels; this times forward and backward as a training loop calls them, checks and
buffers included.
"""
import argparse
import statistics
import sys

import numba
import numpy as np

import nnjit
from _timing import median_seconds, shape_argument


def _median_call(call, calls):
    return median_seconds(call, calls)


def _cases(dtype, shapes):
    rng = np.random.default_rng(0)
    for n, c in shapes:
        x = rng.standard_normal((n, c)).astype(dtype)
        p = np.exp(x - x.max(1, keepdims=True))
        p = (p / p.sum(1, keepdims=True)).astype(dtype)
        log_p = np.log(p)
        labels = rng.integers(0, c, n)
        dense = np.eye(c, dtype=dtype)[labels]
        soft = (0.9 * dense + 0.1 / c).astype(dtype)  # label smoothing: every entry non-zero
        gradient = rng.standard_normal((n, c)).astype(dtype)
        size = f"{n}x{c}"

        def criterion(make, inputs, target):
            def forward():
                module = make()
                return lambda: module.forward(inputs, target)

            def backward():
                module = make()
                module.forward(inputs, target)
                return lambda: module.backward(inputs, target)
            return forward, backward

        for name, make, inputs, target in [
                ("nll_prob_labels", nnjit.ClassNLLCriterion, p, labels),
                ("nll_prob_dense", nnjit.ClassNLLCriterion, p, dense),
                ("nll_prob_soft", nnjit.ClassNLLCriterion, p, soft),
                ("nll_log_labels", lambda: nnjit.ClassNLLCriterion(log_input=True), log_p, labels),
                ("nll_log_dense", lambda: nnjit.ClassNLLCriterion(log_input=True), log_p, dense),
                ("cross_entropy_labels", nnjit.CrossEntropyCriterion, x, labels),
                ("cross_entropy_dense", nnjit.CrossEntropyCriterion, x, dense),
                ("cross_entropy_soft", nnjit.CrossEntropyCriterion, x, soft)]:
            forward, backward = criterion(make, inputs, target)
            yield f"{name}_fwd {size}", forward
            yield f"{name}_bwd {size}", backward

        for name, make in [("softmax", nnjit.SoftMax), ("log_softmax", nnjit.LogSoftMax),
                           ("leaky_relu", nnjit.LeakyReLU), ("dropout", nnjit.Dropout),
                           ("batch_norm", lambda: nnjit.BatchNormalization(0.9))]:
            def forward(make=make, x=x):
                module = make()
                return lambda: module.forward(x)

            def backward(make=make, x=x, gradient=gradient):
                module = make()
                module.forward(x)
                return lambda: module.backward(x, gradient)
            yield f"{name}_fwd {size}", forward
            yield f"{name}_bwd {size}", backward


def _torch_cases(torch, dtype, shapes):
    """name -> maker of a torch call doing the same work as users' torch code would: forward
    recording autograd, backward through autograd (retain_graph, so it can repeat)."""
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    cases = {}
    for n, c in shapes:
        x = rng.standard_normal((n, c)).astype(dtype)
        log_p = x - np.log(np.exp(x).sum(1, keepdims=True)).astype(dtype)
        p = np.exp(log_p)
        labels = torch.from_numpy(rng.integers(0, c, n))
        dense = torch.eye(c, dtype=torch.from_numpy(x).dtype)[labels]
        soft = 0.9 * dense + 0.1 / c
        gradient = torch.from_numpy(rng.standard_normal((n, c)).astype(dtype))
        size = f"{n}x{c}"
        # criterions as a torch user writes them; the probability form has no op of its own
        layers = {"softmax": lambda t: F.softmax(t, 1), "log_softmax": lambda t: F.log_softmax(t, 1),
                  "leaky_relu": lambda t: F.leaky_relu(t, 0.03),
                  "dropout": lambda t: F.dropout(t, 0.5, training=True),
                  "batch_norm": lambda t: F.batch_norm(t, None, None, training=True, eps=1e-3),
                  "nll_prob_labels": lambda t, labels=labels: F.nll_loss(torch.log(t), labels),
                  "nll_prob_dense": lambda t, target=dense: -(target * torch.log(t)).sum(1).mean(),
                  "nll_prob_soft": lambda t, target=soft: -(target * torch.log(t)).sum(1).mean(),
                  "nll_log_labels": lambda t, labels=labels: F.nll_loss(t, labels),
                  "nll_log_dense": lambda t, target=dense: -(target * t).sum(1).mean(),
                  "cross_entropy_labels": lambda t, labels=labels: F.cross_entropy(t, labels),
                  "cross_entropy_dense": lambda t, target=dense: F.cross_entropy(t, target),
                  "cross_entropy_soft": lambda t, target=soft: F.cross_entropy(t, target)}
        for name, op in layers.items():
            inputs = p if name.startswith("nll_prob") else log_p if name.startswith("nll") else x

            def forward(op=op, x=inputs):
                tx = torch.from_numpy(x).requires_grad_()
                return lambda: op(tx)

            def backward(op=op, x=inputs, criterion=name.endswith(("_labels", "_dense", "_soft")),
                         gradient=gradient):
                recorded = op(torch.from_numpy(x).requires_grad_())
                if criterion:
                    return lambda: recorded.backward(retain_graph=True)
                return lambda: recorded.backward(gradient, retain_graph=True)
            cases[f"{name}_fwd {size}"], cases[f"{name}_bwd {size}"] = forward, backward
    return cases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("filters", nargs="*", help="run the cases whose name contains one of these")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    parser.add_argument("--calls", type=int, default=300, help="timed calls per path (3 rounds)")
    parser.add_argument("--shapes", nargs="+", type=shape_argument,
                        default=[(64, 10), (256, 1000), (4096, 1024)],
                        help="ROWSxCOLUMNS ... (put name filters before this option)")
    args = parser.parse_args(argv)
    if args.threads:
        numba.set_num_threads(args.threads)
    shapes = args.shapes
    try:
        import torch
        torch.set_num_threads(numba.get_num_threads())
        torch_cases = _torch_cases(torch, np.dtype(args.dtype), shapes)
    except ImportError:
        torch_cases = {}
    cases = [(name, make) for name, make in _cases(np.dtype(args.dtype), shapes)
             if not args.filters or any(f in name for f in args.filters)]
    # Each round sweeps the whole list, so a pause of the machine (a second or two in which a
    # core is taken, every minute or so here) spoils one round of a few cases, which the
    # median drops, not all three rounds of one case.
    rounds = {name: {"numba": [], "numpy": [], "torch": []} for name, _ in cases}
    calls = max(args.calls // 3, 1)
    for round_number in range(3):
        for name, make in cases:
            for path in ("numba", "numpy"):
                with nnjit.backend(path):
                    rounds[name][path].append(_median_call(make(), calls))
            if name in torch_cases:
                rounds[name]["torch"].append(_median_call(torch_cases[name](), calls))
        print(f"round {round_number + 1} of 3 done", file=sys.stderr, flush=True)
    print(f"{'case':34s} {'numba us':>10s} {'numpy us':>10s} {'numpy/numba':>12s}"
          f" {'torch us':>10s} {'torch/numba':>12s}", flush=True)
    for name, _ in cases:
        numba_time, numpy_time = (statistics.median(rounds[name][p]) for p in ("numba", "numpy"))
        torch_part = ""
        if rounds[name]["torch"]:
            torch_time = statistics.median(rounds[name]["torch"])
            torch_part = f" {torch_time * 1e6:10.1f} {torch_time / numba_time:12.2f}"
        print(f"{name:34s} {numba_time * 1e6:10.1f} {numpy_time * 1e6:10.1f} "
              f"{numpy_time / numba_time:12.2f}{torch_part}", flush=True)

if __name__ == "__main__":
    main()
