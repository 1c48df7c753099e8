"""Per-call times through the module API (what users call), numba path against numpy path.

    python tools/module_timings.py [name filters ...] [--dtype float32] [--shapes 256x1000 ...]

Each case runs on both backends, interleaved over three rounds (the machine is noisy), and
the table gives the median of each path's per-round medians and numpy/numba. `nnjit bench`
times the kernels; this times forward and backward as a training loop calls them, checks and
buffers included.
"""
import argparse
import statistics

import numpy as np

import nnjit
from _timing import median_seconds


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
                ("nll_log_labels", lambda: nnjit.ClassNLLCriterion(log_input=True), log_p, labels),
                ("nll_log_dense", lambda: nnjit.ClassNLLCriterion(log_input=True), log_p, dense),
                ("cross_entropy_labels", nnjit.CrossEntropyCriterion, x, labels),
                ("cross_entropy_dense", nnjit.CrossEntropyCriterion, x, dense)]:
            forward, backward = criterion(make, inputs, target)
            yield f"{name}_fwd {size}", forward
            yield f"{name}_bwd {size}", backward

        for name, make in [("softmax", nnjit.SoftMax), ("log_softmax", nnjit.LogSoftMax),
                           ("leaky_relu", nnjit.LeakyReLU),
                           ("batch_norm", lambda: nnjit.BatchNormalization(0.9))]:
            def forward(make=make):
                module = make()
                return lambda: module.forward(x)

            def backward(make=make):
                module = make()
                module.forward(x)
                return lambda: module.backward(x, gradient)
            yield f"{name}_fwd {size}", forward
            yield f"{name}_bwd {size}", backward


def _shape(text):
    try:
        rows, columns = (int(v) for v in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is ROWSxCOLUMNS, got {text!r}") from None
    return rows, columns


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("filters", nargs="*", help="run the cases whose name contains one of these")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    parser.add_argument("--calls", type=int, default=300, help="timed calls per path (3 rounds)")
    parser.add_argument("--shapes", nargs="+", type=_shape,
                        default=[(64, 10), (256, 1000), (4096, 1024)],
                        help="ROWSxCOLUMNS ... (put name filters before this option)")
    args = parser.parse_args(argv)
    if args.threads:
        import numba
        numba.set_num_threads(args.threads)
    shapes = args.shapes
    print(f"{'case':34s} {'numba us':>10s} {'numpy us':>10s} {'numpy/numba':>12s}", flush=True)
    for name, make in _cases(np.dtype(args.dtype), shapes):
        if args.filters and not any(f in name for f in args.filters):
            continue
        rounds = {"numba": [], "numpy": []}
        for _ in range(3):
            for path in rounds:
                with nnjit.backend(path):
                    rounds[path].append(_median_call(make(), max(args.calls // 3, 1)))
        numba_time, numpy_time = (statistics.median(rounds[p]) for p in ("numba", "numpy"))
        print(f"{name:34s} {numba_time * 1e6:10.1f} {numpy_time * 1e6:10.1f} "
              f"{numpy_time / numba_time:12.2f}", flush=True)


if __name__ == "__main__":
    main()
