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
# Image ops run at their own (batch, channels, height, width) shapes, whatever --shapes says:
# a 3x3 convolution (1 -> 16 channels at 28x28, 16 -> 32 at 14x14), and MaxPool2d(2).
IMAGE_SHAPES = {"conv2d_fwd": [(64, 1, 28, 28), (64, 16, 14, 14)],
                "conv2d_bwd": [(64, 1, 28, 28), (64, 16, 14, 14)],
                "max_pool2d_fwd": [(64, 16, 28, 28)], "max_pool2d_bwd": [(64, 16, 28, 28)]}

# Ops bound by memory traffic: how many batch-sized arrays each reads plus writes. The
# "copy/numba" column compares the op with np.copyto moving the same number of bytes
# (1.0: as fast as a copy).
ARRAYS_MOVED = {"softmax_fwd": 2, "softmax_bwd": 3, "log_softmax_fwd": 2, "relu_fwd": 2,
                "relu_bwd": 3, "leaky_relu_fwd": 2, "leaky_relu_bwd": 3, "dropout_fwd": 2,
                "dropout_bwd": 2, "scaling_fwd": 2}


NO_TORCH_HINT = ("torch is not installed: the torch column shows '-'. "
                 "To add it: pip install torch==2.13.0")


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _pair(kernel, *args):
    """(numba call, numpy call) of one kernel on the same arguments."""
    return (lambda: kernel.numba(*args)), (lambda: kernel.numpy(*args))


def _chain(*pairs):
    """One (numba, numpy) pair that runs several kernels in turn (an op made of two)."""
    return (lambda: [numba_call() for numba_call, _ in pairs]), \
        (lambda: [numpy_call() for _, numpy_call in pairs])


def _ops(torch):
    """name -> builder(x, rng) returning (numba call, numpy call, torch call or None).

    The torch calls are the ATen ops torch's autograd runs for the same layer, on the same
    arrays (shared memory), so each row compares like with like."""
    F = torch.nn.functional if torch else None
    aten = torch.ops.aten if torch else None

    def t(a):
        # None without torch: the torch calls below are then never built (``torch and ...``),
        # but their default arguments, which hold the tensors, are still evaluated.
        return torch.from_numpy(a) if torch else None

    def like(x, rng, scale=1.0):
        return (rng.standard_normal(x.shape) * scale).astype(x.dtype)

    def labels_of(x, rng):
        return rng.integers(0, x.shape[1], x.shape[0])

    def log_probabilities(x):
        out = np.empty_like(x)
        K.log_softmax_update_output.numpy(x, out)
        return out

    def elementwise(kernel, grad_kernel, extra, torch_forward, torch_backward):
        """Forward and backward builders of an elementwise activation on flat views."""
        def forward(x, rng):
            flat = x.reshape(-1)
            return (*_pair(kernel, flat, np.empty_like(flat), *extra(x)),
                    torch and (lambda tx=t(x): torch_forward(tx)))

        def backward(x, rng):
            flat, g = x.reshape(-1), like(x, rng).reshape(-1)
            return (*_pair(grad_kernel, flat, g, np.empty_like(flat), *extra(x)),
                    torch and (lambda tx=t(flat), tg=t(g): torch_backward(tg, tx)))
        return forward, backward

    def softmax_fwd(x, rng):
        return (*_pair(K.softmax_update_output, x, np.empty_like(x)),
                torch and (lambda tx=t(x): torch.softmax(tx, 1)))

    def softmax_bwd(x, rng):
        s, g = np.empty_like(x), like(x, rng)
        K.softmax_update_output.numpy(x, s)
        return (*_pair(K.softmax_update_grad_input, s, g, np.empty_like(x)),
                torch and (lambda ts=t(s), tg=t(g):
                           torch._softmax_backward_data(tg, ts, 1, ts.dtype)))

    def log_softmax_fwd(x, rng):
        return (*_pair(K.log_softmax_update_output, x, np.empty_like(x)),
                torch and (lambda tx=t(x): torch.log_softmax(tx, 1)))

    def log_softmax_bwd(x, rng):
        s, g = log_probabilities(x), like(x, rng)
        return (*_pair(K.log_softmax_update_grad_input, s, g, np.empty_like(x)),
                torch and (lambda ts=t(s), tg=t(g):
                           torch._log_softmax_backward_data(tg, ts, 1, ts.dtype)))

    def nll_fwd(x, rng):
        logp, labels = log_probabilities(x), labels_of(x, rng)
        return (*_pair(K.nll_log_labels_update_output, logp, labels, np.empty(len(x), x.dtype)),
                torch and (lambda tp=t(logp), tl=t(labels): F.nll_loss(tp, tl)))

    def nll_bwd(x, rng):
        logp, labels = log_probabilities(x), labels_of(x, rng)
        return (*_pair(K.nll_log_labels_update_grad_input, logp, labels, np.empty_like(x)),
                torch and (lambda tp=t(logp), tl=t(labels), one=torch.ones((), dtype=t(x).dtype):
                           aten.nll_loss_backward(one, tp, tl, None, 1, -100, one)))

    def row_statistics(x):
        """Cross-entropy's per-row buffers (maximum, sum of exp), as its forward leaves them."""
        return np.empty(len(x), x.dtype), np.empty(len(x))

    def cross_entropy_fwd(x, rng):
        labels = labels_of(x, rng)
        return (*_pair(K.cross_entropy_labels_update_output, x, labels, np.empty(len(x), x.dtype),
                       *row_statistics(x)),
                torch and (lambda tx=t(x), tl=t(labels): F.cross_entropy(tx, tl)))

    def cross_entropy_bwd(x, rng):
        # backward reuses the row statistics of forward, as torch's reuses the log-softmax
        labels, (top, total) = labels_of(x, rng), row_statistics(x)
        K.cross_entropy_labels_update_output.numpy(x, labels, np.empty(len(x), x.dtype), top, total)

        def torch_call(tx=t(x), tl=t(labels), tp=t(log_probabilities(x)),
                       one=torch and torch.ones((), dtype=t(x).dtype)):
            # autograd's path: nll_loss backward, then log_softmax backward
            grad_logp = aten.nll_loss_backward(one, tp, tl, None, 1, -100, one)
            return torch._log_softmax_backward_data(grad_logp, tp, 1, tp.dtype)
        return (*_pair(K.cross_entropy_labels_update_grad_input, x, labels, top, total,
                       np.empty_like(x)),
                torch and torch_call)

    def mse_fwd(x, rng):
        target = like(x, rng)
        return (*_pair(K.mse_update_output, x, target, np.empty(len(x), x.dtype)),
                torch and (lambda tx=t(x), tt=t(target): F.mse_loss(tx, tt, reduction="sum")))

    def mse_bwd(x, rng):
        target = like(x, rng)
        return (*_pair(K.mse_update_grad_input, x, target, np.empty_like(x)),
                torch and (lambda tx=t(x), tt=t(target), one=torch.ones((), dtype=t(x).dtype):
                           aten.mse_loss_backward(one, tx, tt, 0)))

    def dropout_fwd(x, rng):
        flat = x.reshape(-1)
        return (*_pair(K.dropout_update_output, flat, np.empty_like(flat), K.drop_threshold(0.5),
                       x.dtype.type(2), np.uint64(12345)),
                torch and (lambda tx=t(x): F.dropout(tx, 0.5, True)))

    def dropout_bwd(x, rng):
        g = like(x, rng).reshape(-1)

        def torch_call(tg=t(g), mask=torch and aten.native_dropout(t(x), 0.5, True)[1]):
            return aten.native_dropout_backward(tg.view(mask.shape), mask, 2.0)
        return (*_pair(K.dropout_update_grad_input, g, np.empty_like(g), K.drop_threshold(0.5),
                       x.dtype.type(2), np.uint64(12345)),
                torch and torch_call)

    def batch_norm_buffers(x):
        c = x.shape[1]
        return np.zeros(c, x.dtype), np.ones(c, x.dtype), np.empty(c), np.empty(c)

    def batch_norm_fwd(x, rng):
        mean, var, save_mean, save_invstd = batch_norm_buffers(x)
        return (*_pair(K.batch_norm_update_output, x, np.empty_like(x), mean, var, save_mean,
                       save_invstd, 0.9, 1e-5, True),
                torch and (lambda tx=t(x), tm=t(mean.copy()), tv=t(var.copy()):
                           aten.native_batch_norm(tx, None, None, tm, tv, True, 0.1, 1e-5)))

    def batch_norm_bwd(x, rng):
        mean, var, save_mean, save_invstd = batch_norm_buffers(x)
        K.batch_norm_update_output.numpy(x, np.empty_like(x), mean, var, save_mean, save_invstd,
                                         0.9, 1e-5, True)
        g = like(x, rng)
        return (*_pair(K.batch_norm_update_grad_input, x, g, np.empty_like(x), save_mean,
                       save_invstd, True),
                torch and (lambda tx=t(x), tg=t(g), tm=t(save_mean.astype(x.dtype)),
                                  ts=t(save_invstd.astype(x.dtype)):
                           aten.native_batch_norm_backward(tg, tx, None, None, None, tm, ts, True,
                                                           1e-5, [True, False, False])))

    def scaling_fwd(x, rng):
        gamma, beta = like(x[0], rng), like(x[0], rng)
        return (*_pair(K.channelwise_scaling_update_output, x, np.empty_like(x), gamma, beta),
                torch and (lambda tx=t(x), tg=t(gamma), tb=t(beta): torch.addcmul(tb, tx, tg)))

    def scaling_bwd(x, rng):
        gamma, g = like(x[0], rng), like(x, rng)
        grad_gamma, grad_beta = np.zeros_like(gamma), np.zeros_like(gamma)

        def torch_call(tx=t(x), tg=t(g), tgamma=t(gamma)):
            return tg * tgamma, (tg * tx).sum(0), tg.sum(0)
        return (*_chain(_pair(K.channelwise_scaling_update_grad_input, g, np.empty_like(x), gamma),
                        _pair(K.channelwise_scaling_acc_grad_parameters, x, g, grad_gamma,
                              grad_beta)),
                torch and torch_call)

    def linear_weights(x, rng):
        features = x.shape[1]
        weight = (rng.standard_normal((features, features)) / np.sqrt(features)).astype(x.dtype)
        return weight, like(x[0], rng)

    def linear_fwd(x, rng):
        weight, bias = linear_weights(x, rng)
        return (*_pair(K.linear_update_output, x, np.empty_like(x), weight, bias),
                torch and (lambda tx=t(x), tw=t(weight), tb=t(bias): F.linear(tx, tw, tb)))

    def linear_bwd(x, rng):
        weight, _ = linear_weights(x, rng)
        g, grad_input = like(x, rng), np.empty_like(x)
        grad_weight, grad_bias = np.zeros_like(weight), np.zeros(len(weight), x.dtype)
        numba_acc, numpy_acc = _pair(K.linear_acc_grad_parameters, x, g, grad_weight, grad_bias,
                                     np.empty_like(weight))

        def torch_call(tx=t(x), tg=t(g), tw=t(weight)):
            return tg @ tw, tg.T @ tx, tg.sum(0)
        return (lambda: (np.matmul(g, weight, out=grad_input), numba_acc())), \
            (lambda: (np.matmul(g, weight, out=grad_input), numpy_acc())), torch and torch_call

    def optimizer_arrays(x, rng):
        variable, gradient = like(x, rng).reshape(-1), like(x, rng).reshape(-1)
        parameter = torch and torch.nn.Parameter(t(variable.copy()))
        if torch:
            parameter.grad = t(gradient)
        return variable, gradient, parameter

    def sgd_step(x, rng):
        variable, gradient, parameter = optimizer_arrays(x, rng)
        d = x.dtype.type
        return (*_pair(K.sgd_momentum_step, variable, gradient, np.zeros_like(variable), d(1e-3),
                       d(0.9)),
                torch and torch.optim.SGD([parameter], lr=1e-3, momentum=0.9).step)

    def adam_step(x, rng):
        variable, gradient, parameter = optimizer_arrays(x, rng)
        d = x.dtype.type
        return (*_pair(K.adam_step, variable, gradient, np.zeros_like(variable),
                       np.zeros_like(variable), d(1e-3), d(0.9), d(0.999), d(1e-8), d(0.1),
                       d(0.001)),
                torch and torch.optim.Adam([parameter], lr=1e-3, fused=True).step)

    activation_ops = {}
    for name, kernel, grad_kernel, extra, torch_forward, torch_backward in [
            ("relu", K.relu_update_output, K.relu_update_grad_input, lambda x: (),
             lambda tx: F.relu(tx), lambda tg, tx: aten.threshold_backward(tg, tx, 0)),
            ("leaky_relu", K.leaky_relu_update_output, K.leaky_relu_update_grad_input,
             lambda x: (x.dtype.type(0.03),), lambda tx: F.leaky_relu(tx, 0.03),
             lambda tg, tx: aten.leaky_relu_backward(tg, tx, 0.03, False)),
            ("elu", K.elu_update_output, K.elu_update_grad_input, lambda x: (x.dtype.type(1),),
             lambda tx: F.elu(tx), lambda tg, tx: aten.elu_backward(tg, 1.0, 1, 1, False, tx)),
            ("softplus", K.softplus_update_output, K.softplus_update_grad_input, lambda x: (),
             lambda tx: F.softplus(tx), lambda tg, tx: aten.softplus_backward(tg, tx, 1, 20))]:
        activation_ops[name + "_fwd"], activation_ops[name + "_bwd"] = elementwise(
            kernel, grad_kernel, extra, torch_forward, torch_backward)

    def on_both_paths(call):
        """(numba call, numpy call) of a module-level call, each under its backend."""
        from . import backend

        def on(path):
            def run():
                with backend(path):
                    return call()
            return run
        return on("numba"), on("numpy")

    def conv2d(x):
        from .conv import Conv2d
        c_in = x.shape[1]
        return Conv2d(c_in, 16 if c_in == 1 else 2 * c_in, 3, dtype=x.dtype)

    def conv2d_fwd(x, rng):
        conv = conv2d(x)
        return (*on_both_paths(lambda: conv.forward(x)),
                torch and (lambda tx=t(x), tw=t(conv.W), tb=t(conv.b): F.conv2d(tx, tw, tb, padding=1)))

    def conv2d_bwd(x, rng):  # input, weight and bias gradients, as autograd asks for them
        conv = conv2d(x)
        g = like(conv.forward(x), rng)
        c_out = conv.out_channels

        def torch_call(tx=t(x), tw=t(conv.W), tg=t(g)):
            return aten.convolution_backward(tg, tx, tw, [c_out], [1, 1], [1, 1], [1, 1], False,
                                             [0, 0], 1, [True, True, True])
        return (*on_both_paths(lambda: conv.backward(x, g)), torch and torch_call)

    def max_pool2d_fwd(x, rng):
        from .conv import MaxPool2d
        pool = MaxPool2d(2)
        return (*on_both_paths(lambda: pool.forward(x)),
                torch and (lambda tx=t(x): F.max_pool2d(tx, 2)))

    def max_pool2d_bwd(x, rng):
        from .conv import MaxPool2d
        pool = MaxPool2d(2)
        g = like(pool.forward(x), rng)

        def torch_call(tx=t(x), tg=t(g)):
            return aten.max_pool2d_with_indices_backward(tg, tx, [2, 2], [2, 2], [0, 0], [1, 1],
                                                         False, torch_indices)
        torch_indices = torch and F.max_pool2d(t(x), 2, return_indices=True)[1]
        return (*on_both_paths(lambda: pool.backward(x, g)), torch and torch_call)

    return {"softmax_fwd": softmax_fwd, "softmax_bwd": softmax_bwd,
            "log_softmax_fwd": log_softmax_fwd, "log_softmax_bwd": log_softmax_bwd,
            "nll_fwd": nll_fwd, "nll_bwd": nll_bwd,
            "cross_entropy_fwd": cross_entropy_fwd, "cross_entropy_bwd": cross_entropy_bwd,
            "mse_fwd": mse_fwd, "mse_bwd": mse_bwd,
            **activation_ops,
            "dropout_fwd": dropout_fwd, "dropout_bwd": dropout_bwd,
            "batch_norm_fwd": batch_norm_fwd, "batch_norm_bwd": batch_norm_bwd,
            "scaling_fwd": scaling_fwd, "scaling_bwd": scaling_bwd,
            "linear_fwd": linear_fwd, "linear_bwd": linear_bwd,
            "sgd_step": sgd_step, "adam_step": adam_step,
            "conv2d_fwd": conv2d_fwd, "conv2d_bwd": conv2d_bwd,
            "max_pool2d_fwd": max_pool2d_fwd, "max_pool2d_bwd": max_pool2d_bwd}


# before each timed stretch (see median_times); tools/_timing.py uses the same two
QUIET_SECONDS = 0.02
SETTLE_SECONDS = 0.003


def median_times(calls, min_time=0.2, rounds=3, max_repeats=600):
    """Median seconds of each of ``calls``, after three warm-up calls each (compilation
    included there). The paths take turns in ``rounds`` stretches of min_time / rounds each,
    so a burst of load on this shared machine slows more than one path. Each stretch starts
    with a 20 ms pause, then 3 ms of untimed calls (at least two): torch's OpenMP threads keep
    spinning for milliseconds after an op, on the CPU Numba's worker is bound to
    (kernels/_threads.py), and Numba calls made meanwhile ran at their serial speed
    (NLL backward at 256x1000 float32: 14.8 us without the pause, 9.8-10.1 with it; torch
    11.7). The calls after the pause wake each library's own threads."""
    for call in calls:
        for _ in range(3):
            call()
    times = [[] for _ in calls]
    for _ in range(rounds):
        for call, path_times in zip(calls, times):
            time.sleep(min(QUIET_SECONDS, min_time / 10))  # none when only checking, min_time 0
            settle_until, settled = time.perf_counter() + SETTLE_SECONDS, 0
            while settled < 2 or time.perf_counter() < settle_until:
                call()
                settled += 1
            start, count = time.perf_counter(), 0
            while count < 2 or (time.perf_counter() - start < min_time / rounds
                                and count < max_repeats // rounds):
                t0 = time.perf_counter()
                call()
                path_times.append(time.perf_counter() - t0)
                count += 1
    return [statistics.median(path_times) for path_times in times]


def run(ops=None, shapes=None, dtype="float32", threads=None, progress=True, min_time=0.2,
        repeat=1, image_shapes=None):
    """Time each op at each shape; returns one dict per row. The thread counts of numba and
    torch are set equal for the run and restored afterwards. Progress goes to stderr.
    ``min_time``: seconds of timed calls per path (at least 6 calls). ``repeat``: sweeps
    over the whole table; each time is the median over sweeps, which lie minutes apart.
    ``image_shapes``: {op: [(batch, channels, h, w), ...]} for the image ops (default
    IMAGE_SHAPES)."""
    progress = sys.stderr if progress else None
    torch = _torch()
    threads = threads or numba.config.NUMBA_NUM_THREADS
    before = numba.get_num_threads(), torch.get_num_threads() if torch else None
    numba.set_num_threads(threads)
    if torch:
        torch.set_num_threads(threads)
    try:
        return _run(torch, ops, shapes, dtype, threads, progress, min_time, repeat,
                    IMAGE_SHAPES if image_shapes is None else image_shapes)
    finally:
        numba.set_num_threads(before[0])
        if torch:
            torch.set_num_threads(before[1])


def _run(torch, ops, shapes, dtype, threads, progress, min_time, repeat, image_shapes):
    table = _ops(torch)
    names = ops or list(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        raise SystemExit(f"nnjit bench: unknown ops {unknown}; choose from {sorted(table)}")
    shapes = shapes or DEFAULT_SHAPES
    keys = [(name, shape) for name in names for shape in image_shapes.get(name, shapes)]
    sweeps = {key: [] for key in keys}
    total = len(keys) * repeat
    for sweep in range(repeat):
        for index, (name, shape) in enumerate(keys):
            if progress:
                print(f"\r[{sweep * len(keys) + index + 1}/{total}] {name} "
                      f"{'x'.join(map(str, shape))}   ", end="", file=progress, flush=True)
            sweeps[name, shape].append(_time_op(table[name], name, shape, dtype, min_time))
    if progress:
        print("\r" + " " * 60 + "\r", end="", file=progress)
    rows = []
    for (name, shape), measured in sweeps.items():
        row = {"op": name, "shape": list(shape), "dtype": dtype, "threads": threads,
               "repeat": repeat}
        for path in ("numba_s", "numpy_s", "torch_s", "copy_s"):
            values = [m[path] for m in measured if m.get(path) is not None]
            row[path] = statistics.median(values) if values else None
        row["numpy/numba"] = row["numpy_s"] / row["numba_s"]
        row["torch/numba"] = row["torch_s"] / row["numba_s"] if row["torch_s"] else None
        row["copy/numba"] = row["copy_s"] / row["numba_s"] if row["copy_s"] else None
        rows.append(row)
    return rows


def _time_op(builder, name, shape, dtype, min_time):
    """{path: median seconds} of one op at one shape, on fresh arrays."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    numba_call, numpy_call, torch_call = builder(x, rng)
    calls = {"numba_s": numba_call, "numpy_s": numpy_call}
    if torch_call:
        calls["torch_s"] = torch_call
    if name in ARRAYS_MOVED:
        calls["copy_s"] = _copy_call(x, ARRAYS_MOVED[name])
    return dict(zip(calls, median_times(list(calls.values()), min_time)))


def _copy_call(x, arrays_moved):
    """np.copyto moving arrays_moved/2 arrays of x's size (read plus write)."""
    source = np.ones(int(x.size * arrays_moved / 2), x.dtype)
    target = np.empty_like(source)
    return lambda: np.copyto(target, source)


def format_table(rows):
    def number(value, width, digits):
        return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}s}"

    head = (f"{'op':18s} {'shape':>13s} {'numba ms':>9s} {'numpy ms':>9s} {'torch ms':>9s} "
            f"{'numpy/numba':>11s} {'torch/numba':>11s} {'copy/numba':>10s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        torch_ms = r["torch_s"] * 1e3 if r["torch_s"] else None
        lines.append(f"{r['op']:18s} {'x'.join(map(str, r['shape'])):>13s} "
                     f"{number(r['numba_s'] * 1e3, 9, 4)} {number(r['numpy_s'] * 1e3, 9, 4)} "
                     f"{number(torch_ms, 9, 4)} {number(r['numpy/numba'], 11, 2)} "
                     f"{number(r['torch/numba'], 11, 2)} {number(r.get('copy/numba'), 10, 2)}")
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
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="sweeps over the table; times are medians over them (default 1)")
    parser.add_argument("--json", metavar="FILE", help="also save the rows as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    rows = run(args.ops, args.shapes, args.dtype, args.threads, repeat=args.repeat)
    print(f"threads: numba {rows[0]['threads']}, torch {rows[0]['threads'] if _torch() else '-'}; "
          f"dtype {args.dtype}; medians after warm-up"
          + (f", over {args.repeat} sweeps" if args.repeat > 1 else ""))
    print(format_table(rows))
    if not _torch():
        print(NO_TORCH_HINT)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)
