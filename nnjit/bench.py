"""``python -m nnjit bench``: the kernel path, the NumPy path and (if installed) torch on the
same arrays in one process, one row per op and shape: medians and ratios."""
import argparse
import json
import statistics
import sys
import time

import numba
import numpy as np

from . import kernels as K

DEFAULT_SHAPES = [(64, 10), (256, 1000), (4096, 1024)]


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _ops(torch):
    """name -> builder(x, rng) returning (kernel, args, torch_callable or None)."""
    F = torch.nn.functional if torch else None

    def t(a):
        return torch.from_numpy(a) if torch else None

    def softmax_fwd(x, rng):
        return K.softmax_update_output, (x, np.empty_like(x)), torch and (
            lambda tx=t(x): torch.softmax(tx, 1))

    def softmax_bwd(x, rng):
        s, g = np.empty_like(x), rng.standard_normal(x.shape).astype(x.dtype)
        K.softmax_update_output.numpy(x, s)
        return K.softmax_update_grad_input, (s, g, np.empty_like(x)), torch and (
            lambda ts=t(s), tg=t(g): torch._softmax_backward_data(tg, ts, 1, ts.dtype))

    def log_softmax_fwd(x, rng):
        return K.log_softmax_update_output, (x, np.empty_like(x)), torch and (
            lambda tx=t(x): torch.log_softmax(tx, 1))

    def cross_entropy_fwd(x, rng):
        labels = rng.integers(0, x.shape[1], x.shape[0])
        return K.cross_entropy_labels_update_output, (x, labels, np.empty(x.shape[0], x.dtype)), \
            torch and (lambda tx=t(x), tl=t(labels): F.cross_entropy(tx, tl))

    def leaky_relu_fwd(x, rng):
        flat = x.reshape(-1)
        return K.leaky_relu_update_output, (flat, np.empty_like(flat), x.dtype.type(0.03)), \
            torch and (lambda tx=t(x): F.leaky_relu(tx, 0.03))

    def dropout_fwd(x, rng):
        flat = x.reshape(-1)
        return K.dropout_update_output, (flat, np.empty_like(flat), K.drop_threshold(0.5),
                                         x.dtype.type(2), np.uint64(12345)), \
            torch and (lambda tx=t(x): F.dropout(tx, 0.5, True))

    return {"softmax_fwd": softmax_fwd, "softmax_bwd": softmax_bwd,
            "log_softmax_fwd": log_softmax_fwd, "cross_entropy_fwd": cross_entropy_fwd,
            "leaky_relu_fwd": leaky_relu_fwd, "dropout_fwd": dropout_fwd}


def median_time(call, min_time=0.2, max_repeats=200):
    """Median seconds of ``call`` after three warm-up calls (compilation included there)."""
    for _ in range(3):
        call()
    times, start = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < min_time and len(times) < max_repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(ops=None, shapes=None, dtype="float32", threads=None, progress=True):
    """Time each op at each shape; returns one dict per row. The thread counts of numba and
    torch are set equal for the run and restored afterwards. Progress goes to stderr."""
    progress = sys.stderr if progress else None
    torch = _torch()
    threads = threads or numba.config.NUMBA_NUM_THREADS
    before = numba.get_num_threads(), torch.get_num_threads() if torch else None
    numba.set_num_threads(threads)
    if torch:
        torch.set_num_threads(threads)
    try:
        return _run(torch, ops, shapes, dtype, threads, progress)
    finally:
        numba.set_num_threads(before[0])
        if torch:
            torch.set_num_threads(before[1])


def _run(torch, ops, shapes, dtype, threads, progress):
    table = _ops(torch)
    names = ops or list(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        raise SystemExit(f"nnjit bench: unknown ops {unknown}; choose from {sorted(table)}")
    rows, shapes = [], shapes or DEFAULT_SHAPES
    total, done = len(names) * len(shapes), 0
    for name in names:
        for shape in shapes:
            done += 1
            if progress:
                print(f"\r[{done}/{total}] {name} {shape[0]}x{shape[1]}   ", end="", file=progress,
                      flush=True)
            rng = np.random.default_rng(0)
            x = (rng.standard_normal(shape) * 3).astype(dtype)
            kernel, args, torch_call = table[name](x, rng)
            row = {"op": name, "shape": list(shape), "dtype": dtype, "threads": threads,
                   "numba_s": median_time(lambda: kernel.numba(*args)),
                   "numpy_s": median_time(lambda: kernel.numpy(*args)),
                   "torch_s": median_time(torch_call) if torch_call else None}
            row["numpy/numba"] = row["numpy_s"] / row["numba_s"]
            row["torch/numba"] = row["torch_s"] / row["numba_s"] if torch_call else None
            rows.append(row)
    if progress:
        print("\r" + " " * 60 + "\r", end="", file=progress)
    return rows


def format_table(rows):
    head = (f"{'op':20s} {'shape':>10s} {'numba ms':>10s} {'numpy ms':>10s} {'torch ms':>10s} "
            f"{'numpy/numba':>12s} {'torch/numba':>12s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        torch_ms = f"{r['torch_s'] * 1e3:10.4f}" if r["torch_s"] else f"{'-':>10s}"
        torch_ratio = f"{r['torch/numba']:12.2f}" if r["torch/numba"] else f"{'-':>12s}"
        lines.append(f"{r['op']:20s} {'x'.join(map(str, r['shape'])):>10s} "
                     f"{r['numba_s'] * 1e3:10.4f} {r['numpy_s'] * 1e3:10.4f} {torch_ms} "
                     f"{r['numpy/numba']:12.2f} {torch_ratio}")
    return "\n".join(lines)


def _shape(text):
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"shape must look like 256x1000, got {text!r}") from exc
    return rows, cols


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nnjit bench", description=__doc__)
    parser.add_argument("--ops", nargs="+", help="ops to time (default: all)")
    parser.add_argument("--shapes", nargs="+", type=_shape, help="e.g. 64x10 256x1000")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, help="threads for numba and torch (default: all)")
    parser.add_argument("--json", metavar="FILE", help="also save the rows as JSON")
    args = parser.parse_args(argv)
    rows = run(args.ops, args.shapes, args.dtype, args.threads)
    print(f"threads: numba {rows[0]['threads']}, torch {rows[0]['threads'] if _torch() else '-'}; "
          f"dtype {args.dtype}; medians after warm-up")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)
