"""``python -m nnjit train``: train an MLP on handwritten digits with the nnjit API.

The default data are the 1797 8x8 digits that ship inside scikit-learn (no download), split
80/20 into training and validation with a fixed seed; ``--data FOLDER`` trains on MNIST's
four IDX files instead (train-* for training, t10k-* for validation).
"""
import argparse
import copy
import gzip
import importlib.util
import io
import math
import os
import sys
import time
import traceback

import numba
import numpy as np

from ._compile_helper import ForwardCompiler
from .kernels import _cache, _dispatch
from .activations import ELU, LeakyReLU, ReLU, SoftPlus
from .containers import Sequential
from .conv import Conv2d, MaxPool2d
from .criterions import ClassNLLCriterion
from .distributed import DataParallel, RanksDivergedError, set_rank_threads, shard_range, world
from .dropout import Dropout
from .idx import IDXError, load_mnist
from .linear import Linear
from .normalization import BatchNormalization, ChannelwiseScaling
from .reshape import Flatten
from .optim import _flatten, adam_optimizer, sgd_momentum
from .serialize import StateFileError, check_writable, load, save
from .softmax import LogSoftMax

ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "elu": ELU, "softplus": SoftPlus}
OPTIMIZERS = {"adam": adam_optimizer, "sgd_momentum": sgd_momentum}
MAX_WIDTH = 1 << 20  # per hidden layer; the memory check below is the real bound
SPLIT_SEED = 0  # the digits' train/validation split does not move with --seed
EVALUATION_BATCH = 1024  # rows per forward when the validation set is scored


class TrainError(Exception):
    """A problem with the command's input, reported as one line, without a traceback."""


def _digits():
    """(pixels (1797, 64) in 0..16, labels) of scikit-learn's digits, read from the CSV that
    ships inside scikit-learn without importing it (the import alone took 0.7 s, more than a
    warm run's training); through ``load_digits`` if that file is not where it used to be."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise TrainError("the default data are scikit-learn's digits: pip install 'nnjit[train]'"
                         " (or give --data FOLDER with the MNIST IDX files)")
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz")
    try:
        with gzip.open(path, "rt") as stream:
            table = np.loadtxt(stream, delimiter=",")
        if table.ndim == 2 and table.shape[1] == 65:
            return table[:, :-1], table[:, -1].astype(np.int64)
    except (OSError, ValueError, EOFError):
        pass
    from sklearn.datasets import load_digits
    digits = load_digits()
    return digits.data, digits.target.astype(np.int64)


def load_digits_split(validation_fraction=0.2):
    """scikit-learn's digits, pixels scaled to [0, 1], split with a fixed seed."""
    pixels, y = _digits()
    x = (pixels / 16.0).astype(np.float32)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    n_val = int(round(len(x) * validation_fraction))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def build_model(n_in, n_classes, hidden, activation, batchnorm, dropout, dtype, sync=False):
    layers = []
    for n_out in hidden:
        layers.append(Linear(n_in, n_out, dtype=dtype))
        if batchnorm:
            layers += [BatchNormalization(0.9, sync=sync), ChannelwiseScaling(n_out, dtype=dtype)]
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(Dropout(dropout))
        n_in = n_out
    layers += [Linear(n_in, n_classes, dtype=dtype), LogSoftMax()]
    return Sequential(*layers)


def build_cnn(side, n_classes, channels, activation, dropout, dtype):
    """Conv2d(3x3) -> activation -> MaxPool2d(2), twice, then Flatten -> Linear -> LogSoftMax,
    for (batch, 1, side, side) images."""
    first, second = channels
    layers = [Conv2d(1, first, 3, dtype=dtype), ACTIVATIONS[activation](), MaxPool2d(2),
              Conv2d(first, second, 3, dtype=dtype), ACTIVATIONS[activation](), MaxPool2d(2),
              Flatten()]
    if dropout > 0:
        layers.append(Dropout(dropout))
    pooled = side // 2 // 2
    layers += [Linear(second * pooled * pooled, n_classes, dtype=dtype), LogSoftMax()]
    return Sequential(*layers)


def build(recipe):
    """The model a recipe describes: {"model": "mlp" or "cnn"} and build_model's or
    build_cnn's arguments, the dtype by name (JSON-able, for the compile helper)."""
    arguments = dict(recipe)
    kind = arguments.pop("model")
    arguments["dtype"] = np.dtype(arguments["dtype"])
    return (build_cnn if kind == "cnn" else build_model)(**arguments)


def _as_images(x):
    """(n, side*side) pixels as (n, 1, side, side) images."""
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1] or side < 4:
        raise TrainError(f"--model cnn needs square images of at least 4x4 pixels, got "
                         f"{x.shape[1]} pixels per sample")
    return x.reshape(len(x), 1, side, side)


def optimizer_config(args):
    if args.optimizer == "adam":
        return {"learning_rate": args.lr, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    return {"learning_rate": args.lr, "momentum": args.momentum}


def evaluate(model, criterion, x, y, batch_size, parallel=None):
    """(mean loss, accuracy) in evaluation mode; with ``parallel`` (a DataParallel), each rank
    evaluates its shard of x and the sums are combined."""
    model.evaluate()
    n_samples = len(x)
    if parallel is not None:
        start, stop = shard_range(len(x), parallel.size, parallel.rank)
        x, y = x[start:stop], y[start:stop]
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        out = model.forward(xb)
        total_loss += criterion.forward(out, yb) * len(xb)
        correct += int((out.argmax(axis=1) == yb).sum())
    if parallel is not None:
        total_loss, correct = parallel.sum_across_ranks([total_loss, correct])
    model.train()
    return total_loss / n_samples, correct / n_samples


def train_step(model, criterion, xb, yb, step, config, state, parallel=None):
    """One optimizer step on the global batch (xb, yb); returns (the sum of the losses of this
    rank's rows, how many of them the model got right, their mean loss)."""
    if parallel is not None:
        xb, yb = parallel.shard_batch(xb, yb)
    model.zeroGradParameters()
    output = model.forward(xb)
    # an empty shard (a batch smaller than the rank count) has no loss but joins every collective
    loss = criterion.forward(output, yb) if len(xb) else 0.0
    if parallel is None:
        model.backward(xb, criterion.backward(output, yb))
    else:
        model.backward(xb, parallel.loss_gradient(criterion, output, yb))
        parallel.allreduce_gradients()
    step(model.getParameters(), model.getGradParameters(), config, state)
    return loss * len(xb), int((output.argmax(axis=1) == yb).sum()), loss


class Progress:
    """A live bar on a terminal; nothing between epoch lines otherwise (CI, pipes)."""

    def __init__(self, stream, epochs, batches):
        self.stream, self.epochs, self.batches = stream, epochs, batches
        self.live = stream.isatty()

    def batch(self, epoch, done, loss):
        if not self.live:
            return
        width = 24
        filled = width * done // self.batches
        self.stream.write(f"\repoch {epoch:>{len(str(self.epochs))}}/{self.epochs} "
                          f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.batches} "
                          f"loss {loss:.4f}")
        self.stream.flush()

    def epoch(self, line):
        if self.live:
            self.stream.write("\r\033[K")
        self.stream.write(line + "\n")
        self.stream.flush()


def train(args, out=None, comm=None):
    """Run the command; returns the history (a dict of per-epoch lists). With ``comm`` (an
    MPI communicator), data-parallel over its ranks: only rank 0 prints and writes files."""
    out = out or sys.stdout
    root = comm is None or comm.Get_rank() == 0
    if not root:
        out = io.StringIO()  # discarded (a devnull handle was never closed)
    warn = _warn if root else (lambda message: None)
    if args.data:
        try:
            x_train, y_train, x_val, y_val = load_mnist(args.data)
        except (IDXError, OSError) as exc:
            raise TrainError(_one_line(exc)) from None
        source = f"MNIST IDX files in {args.data}"
    else:
        x_train, y_train, x_val, y_val = load_digits_split()
        source = "scikit-learn's handwritten digits (8x8)"
    dtype = np.dtype(args.dtype)
    x_train, x_val = x_train.astype(dtype), x_val.astype(dtype)
    n_classes = int(max(y_train.max(), y_val.max())) + 1
    present = np.unique(y_train).size
    if present < n_classes:
        warn(f"labels run from 0 to {n_classes - 1}, so the model has {n_classes} outputs, but "
              f"only {present} of those classes occur in the training data")
    np.random.seed(args.seed)  # weights and dropout masks
    try:
        if args.model == "cnn":
            if args.batchnorm or args.sync_batchnorm:
                raise TrainError("--batchnorm applies to the MLP (BatchNormalization takes "
                                 "(batch, features))")
            x_train, x_val = _as_images(x_train), _as_images(x_val)
            recipe = {"model": "cnn", "side": x_train.shape[2], "n_classes": n_classes,
                      "channels": list(args.channels), "activation": args.activation,
                      "dropout": args.dropout, "dtype": dtype.name}
        else:
            _check_model_memory(x_train.shape[1], n_classes, args.hidden, dtype)
            recipe = {"model": "mlp", "n_in": x_train.shape[1], "n_classes": n_classes,
                      "hidden": list(args.hidden), "activation": args.activation,
                      "batchnorm": bool(args.batchnorm or args.sync_batchnorm),
                      "dropout": args.dropout, "dtype": dtype.name,
                      "sync": bool(args.sync_batchnorm)}
        model = build(recipe)
    except MemoryError:
        raise TrainError(f"not enough memory for a model with hidden sizes {args.hidden}") from None
    model.input_gradient = False  # the images are data: no gradient with respect to them
    criterion = ClassNLLCriterion(log_input=True)
    step, config = OPTIMIZERS[args.optimizer], optimizer_config(args)
    state = {}
    if args.load:
        try:
            state = load(args.load, model)
        except (StateFileError, OSError) as exc:
            raise TrainError(_one_line(exc)) from None
        if not all(np.isfinite(p).all() for p in _flatten(model.getParameters())):
            warn(f"{args.load} holds NaN or infinite weights: training will not recover from them")
        if state and args.optimizer == "adam" and "m" not in state \
                or state and args.optimizer == "sgd_momentum" and "accumulated_grads" not in state:
            raise TrainError(f"{args.load} holds the state of another optimizer than "
                             f"{args.optimizer}")
    print(f"data: {source}: {len(x_train)} training and {len(x_val)} validation samples, "
          f"{n_classes} classes", file=out)
    print(f"model: {model!r}", file=out)
    print(f"backend {_dispatch.get_backend()}, {numba.get_num_threads()} threads, "
          f"{dtype.name}, {args.optimizer} lr {args.lr:g}, batch {args.batch_size}, "
          f"seed {args.seed}", file=out)
    parallel = None
    if comm is not None:
        parallel = DataParallel(model, comm)
        blas = getattr(args, "blas_threads", None)
        blas = ",".join(map(str, blas)) if blas else "the default number of"
        print(f"distributed: {parallel.size} ranks, each with {numba.get_num_threads()} numba and "
              f"{blas} BLAS threads and 1/{parallel.size} of each global batch of "
              f"{args.batch_size}", file=out)

    # a first run compiles for seconds (the CNN's convolutions about 13 s): say so before it
    print("compiling kernels (later runs load them from the cache) ...", file=out, flush=True)
    start = time.perf_counter()
    _compile(model, criterion, x_train, y_train, x_val, y_val, args.batch_size, step, config,
             comm, recipe)
    print(f"kernels ready in {time.perf_counter() - start:.1f} s", file=out)

    history = {key: [] for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")}
    rng = np.random.default_rng(args.seed)
    n_batches = math.ceil(len(x_train) / args.batch_size)
    progress = Progress(out, args.epochs, n_batches)
    progress.live = progress.live and parallel is None  # a rank's loss is not the batch's
    began = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        order = rng.permutation(len(x_train))
        total_loss, correct = 0.0, 0
        model.train()
        for batch in range(n_batches):
            index = order[batch * args.batch_size:(batch + 1) * args.batch_size]
            loss_sum, batch_correct, loss = train_step(model, criterion, x_train[index],
                                                       y_train[index], step, config, state,
                                                       parallel)
            total_loss += loss_sum
            correct += batch_correct
            progress.batch(epoch, batch + 1, loss)
        seconds = time.perf_counter() - epoch_start
        if parallel is not None:
            total_loss, correct = parallel.sum_across_ranks([total_loss, correct])
            try:
                parallel.check_in_sync()
            except RanksDivergedError as exc:
                raise TrainError(f"epoch {epoch}: {exc}") from None
            parallel.average_moving_statistics()
        val_loss, val_accuracy = evaluate(model, criterion, x_val, y_val, EVALUATION_BATCH,
                                          parallel)
        history["train_loss"].append(float(total_loss) / len(x_train))
        history["train_accuracy"].append(float(correct) / len(x_train))
        history["val_loss"].append(float(val_loss))
        history["val_accuracy"].append(float(val_accuracy))
        progress.epoch(f"epoch {epoch:>{len(str(args.epochs))}}/{args.epochs}  "
                       f"train loss {history['train_loss'][-1]:.4f}  val loss {val_loss:.4f}  "
                       f"val accuracy {val_accuracy:.4f}  {len(x_train) / seconds:,.0f} samples/s  "
                       f"{time.perf_counter() - began:.2f} s")
    if args.epochs == 0:
        val_loss, val_accuracy = evaluate(model, criterion, x_val, y_val, EVALUATION_BATCH,
                                          parallel)
        history["val_loss"].append(float(val_loss))
        history["val_accuracy"].append(float(val_accuracy))
    print(f"final validation accuracy: {history['val_accuracy'][-1]:.4f} "
          f"(training took {time.perf_counter() - began:.2f} s)", file=out)
    if args.save and root:
        try:
            save(args.save, model, state)
        except OSError as exc:  # checked at the start; the disk may have filled up since
            raise TrainError(f"--save {args.save}: {exc}") from None
        print(f"saved weights, statistics and optimizer state to {args.save}", file=out)
    if args.plot and root:
        plot_history(history, args.plot)
        print(f"saved the curves to {args.plot}", file=out)
    return history


def _one_line(exc):
    """An exception as one line (a load refusal lists its problems on several)."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    return lines[0] + (f" {'; '.join(line.strip() for line in lines[1:])}" if len(lines) > 1 else "")


def _warn(message):
    print(f"python -m nnjit train: warning: {message}", file=sys.stderr)


def _check_model_memory(n_in, n_classes, hidden, dtype):
    """Refuses a model whose weights, gradients and optimizer buffers (4 copies) would not
    fit in this machine's memory, before anything is allocated."""
    widths = [n_in, *hidden, n_classes]
    values = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    needed = 4 * values * dtype.itemsize
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if needed > available:
        raise TrainError(f"hidden sizes {hidden} make a model of {values:,} {dtype.name} weights: "
                         f"{needed / 2**30:.1f} GiB with gradients and optimizer state, more than "
                         f"this machine's {available / 2**30:.1f} GiB")


def batch_sizes(n, batch_size):
    """The sizes, largest first, of the batches that cut n rows into batch_size ones: a full
    one (or all n rows, if fewer) and the shorter last one, if there is one."""
    sizes = [min(n, batch_size)] if n else []
    if n > batch_size and n % batch_size:
        sizes.append(n % batch_size)
    return sizes


def _compile(model, criterion, x_train, y_train, x_val, y_val, batch_size, step, config,
             comm=None, recipe=None):
    """Training steps and validation batches on copies, one of each size the run will use (the
    last batch can be shorter, and a shorter batch can take other kernel variants), so the
    kernels the run needs are compiled before the clock starts; the model, its optimizer state
    and the random generators are left as they were. Every rank takes it in step with the
    others (the copies' collectives match). Given the model's ``recipe``, a first run shares
    the work with a second process (_compile_helper), which fills the cache with the forward
    kernels while this one compiles the backward ones."""
    random_state = np.random.get_state()
    sizes = batch_sizes(len(x_train), batch_size)
    if comm is not None:  # as evaluate: each rank its shard
        start, stop = shard_range(len(x_val), comm.Get_size(), comm.Get_rank())
        x_val, y_val = x_val[start:stop], y_val[start:stop]
    eval_sizes = batch_sizes(len(x_val), EVALUATION_BATCH)
    # not under MPI (every rank would start a helper for the same kernels), nor where the
    # helper could not save what it compiles
    if recipe is not None and comm is None and _cache.enabled() \
            and _dispatch.get_backend() == "numba" and _cache.writable():
        _compile_with_helper(model, criterion, x_train, y_train, x_val, sizes, eval_sizes, step,
                             config, recipe)
    model, criterion = copy.deepcopy(model), copy.deepcopy(criterion)
    parallel = None
    if comm is not None:
        parallel = DataParallel(model, comm)
    state = {}
    for size in sizes:
        train_step(model, criterion, x_train[:size], y_train[:size], step, config, state, parallel)
    model.evaluate()
    for size in eval_sizes:
        criterion.forward(model.forward(x_val[:size]), y_val[:size])
    np.random.set_state(random_state)


def _compile_with_helper(model, criterion, x_train, y_train, x_val, sizes, eval_sizes, step,
                         config, recipe):
    """Start the forward kernels compiling in a helper process; here, run forward on the NumPy
    path (nothing to compile) and backward and the optimizer step on the Numba path, so this
    process compiles only those. If that compiled nothing (a warm cache), stop the helper;
    otherwise wait for it, so the forward kernels are then loaded from the cache."""
    try:
        helper = ForwardCompiler(recipe, [x_train[:size] for size in sizes],
                                 [x_val[:size] for size in eval_sizes])
    except OSError:
        return  # no second process: everything compiles here
    compiled = False
    try:
        misses = _cache.STATS["misses"]
        model, criterion, state = copy.deepcopy(model), copy.deepcopy(criterion), {}
        for size in sizes:
            xb, yb = x_train[:size], y_train[:size]
            model.zeroGradParameters()
            with _dispatch.backend("numpy"):
                output = model.forward(xb)
                criterion.forward(output, yb)
            model.backward(xb, criterion.backward(output, yb))
            step(model.getParameters(), model.getGradParameters(), config, state)
        # the helper's entries are of use only if saving works (else stop it, as when warm)
        compiled = _cache.STATS["misses"] > misses and _cache.writable()
    finally:
        helper.finish(wait=compiled)


def plot_history(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    epochs = np.arange(1, len(history["val_loss"]) + 1)
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for axes, key, title in ((loss_axes, "loss", "loss (NLL)"), (accuracy_axes, "accuracy", "accuracy")):
        if history[f"train_{key}"]:
            axes.plot(epochs, history[f"train_{key}"], marker="o", label="train")
        axes.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _layer_width(text):
    value = _positive_int(text)
    if value > MAX_WIDTH:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_WIDTH:,}, got {value:,}")
    return value


def _seed(text):
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32), got {value}")
    return value


def _probability(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _learning_rate(text):
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {value}")
    return value


def _check_plot_format(path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in formats:
        raise SystemExit(f"python -m nnjit train: --plot {path}: unknown image format "
                         f"{extension!r}; use one of {', '.join(sorted(formats))}")


def parser():
    p = argparse.ArgumentParser(prog="python -m nnjit train", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", metavar="FOLDER", help="MNIST IDX files (default: sklearn digits)")
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp",
                   help="mlp: Linear layers; cnn: two Conv2d-MaxPool2d stages, then Linear")
    p.add_argument("--hidden", type=_layer_width, nargs="*", default=[128],
                   help="hidden layer sizes (mlp)")
    p.add_argument("--channels", type=_layer_width, nargs=2, default=[32, 64],
                   metavar=("C1", "C2"), help="the two convolutions' channels (cnn)")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    p.add_argument("--batchnorm", action="store_true", help="BatchNormalization + scaling")
    p.add_argument("--sync-batchnorm", action="store_true",
                   help="--batchnorm with statistics of the whole global batch across ranks "
                        "(--distributed; without it each rank normalizes by its own shard)")
    p.add_argument("--dropout", type=_probability, default=0.0, metavar="P")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    p.add_argument("--lr", type=_learning_rate, default=1e-3, help="learning rate")
    p.add_argument("--momentum", type=_probability, default=0.9, help="for sgd_momentum, in [0, 1)")
    p.add_argument("--epochs", type=_non_negative_int, default=20)
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--backend", choices=list(_dispatch.BACKENDS), default=None,
                   help="default: NNJIT_BACKEND or numba")
    p.add_argument("--threads", type=_positive_int,
                   help="numba threads (default: all); with --distributed, numba and BLAS "
                        "threads of each rank (default: 1)")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI ranks: mpiexec -n N python -m mpi4py -m nnjit "
                        "train --distributed ...; --batch-size is the global batch")
    p.add_argument("--plot", metavar="FILE.png", help="save loss and accuracy curves")
    p.add_argument("--save", metavar="FILE.npz", help="save weights and optimizer state")
    p.add_argument("--load", metavar="FILE.npz", help="start from saved weights and state")
    return p


def _start_distributed(args):
    """MPI's COMM_WORLD, with this rank's threads set (nnjit.distributed.set_rank_threads:
    one Numba and one BLAS thread unless --threads or the environment says otherwise)."""
    try:
        comm = world()
    except ImportError as exc:
        raise SystemExit(f"python -m nnjit train: --distributed: {exc}") from None
    _check_threads(args.threads)
    args.blas_threads = set_rank_threads(args.threads)
    return comm


def _check_threads(threads):
    if threads is not None and threads > numba.config.NUMBA_NUM_THREADS:
        raise SystemExit(f"python -m nnjit train: --threads {threads} is more than "
                         f"the {numba.config.NUMBA_NUM_THREADS} numba was started with")


def main(argv=None):
    args = parser().parse_args(argv)
    if not args.distributed:
        _run(args, None, args)
        return
    comm = _start_distributed(args)
    # only rank 0 writes files, so only rank 0 checks their destinations
    checked = args if comm.Get_rank() == 0 else argparse.Namespace(
        **{**vars(args), "save": None, "plot": None})
    try:
        _run(args, comm, checked)
    except BaseException as exc:
        # without `python -m mpi4py`, the other ranks would wait for this one forever
        if comm.Get_size() > 1 and not (isinstance(exc, SystemExit) and not exc.code):
            if isinstance(exc, SystemExit):
                print(f"rank {comm.Get_rank()}: {exc.code}", file=sys.stderr, flush=True)
            else:
                print(f"rank {comm.Get_rank()}:", file=sys.stderr)
                traceback.print_exc()
                sys.stderr.flush()
            comm.Abort(1)
        raise


def _run(args, comm, checked):
    """``checked``: args as far as this process checks and writes files (rank 0: all)."""
    if checked.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("python -m nnjit train: --plot needs matplotlib: "
                             "pip install 'nnjit[plot]'") from None
    for option, path in (("--save", checked.save), ("--plot", checked.plot)):
        if path:  # before training: a run is not lost to a bad destination at its end
            try:
                check_writable(path)
            except OSError as exc:
                raise SystemExit(f"python -m nnjit train: {option}: {exc}") from None
    if checked.plot:
        _check_plot_format(checked.plot)
    if args.threads and comm is None:  # (distributed: _start_distributed)
        _check_threads(args.threads)
        numba.set_num_threads(args.threads)
    try:
        with _dispatch.backend(args.backend or _dispatch.get_backend()):
            train(args, comm=comm)
    except TrainError as exc:
        raise SystemExit(f"python -m nnjit train: {exc}") from None
