"""``python -m nnjit compile``: compile every kernel the layer API reaches, in float32 and
float64, serial and parallel variants, into the compiled-kernel cache, so that later processes
start at full speed (see docs/cache.md)."""
import argparse
import itertools
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from .activations import ELU, LeakyReLU, ReLU, SoftPlus
from .containers import Sequential
from .conv import AvgPool2d, Conv2d, MaxPool2d
from .criterions import ClassNLLCriterion, CrossEntropyCriterion, MSECriterion
from .distributed import SelfComm, Shard
from .dropout import Dropout
from .kernels import _cache
from .kernels._config import LONG_ROW
from .linear import Linear
from .normalization import BatchNormalization, ChannelwiseScaling
from .reshape import Flatten
from .softmax import LogSoftMax, SoftMax
from .warmup import warmup


def _body(dtype):
    # LeakyReLU right before Dropout: Sequential runs that pair as one kernel each way in
    # training, and each module's own kernels in evaluation (warmup runs both modes)
    return [Linear(8, 6, dtype=dtype), BatchNormalization(0.9), ChannelwiseScaling(6, dtype=dtype),
            ReLU(), ELU(), SoftPlus(), LeakyReLU(), Dropout(0.5), Linear(6, 4, dtype=dtype)]


def plan(dtype):
    """(description, model, criterion, target, input shape) covering every module, criterion
    and target form; warmup adds the optimizers, both modes and both kernel variants."""
    labels = np.array([1, 3])
    dense = np.eye(4, dtype=dtype)[labels]
    for form, criterion, last in [("probabilities", ClassNLLCriterion(), SoftMax()),
                                  ("log-probabilities", ClassNLLCriterion(log_input=True), LogSoftMax()),
                                  ("raw scores", CrossEntropyCriterion(), None)]:
        for kind, target in (("labels", labels), ("dense targets", dense)):
            layers = _body(dtype) + ([last] if last is not None else [])
            yield (f"{type(criterion).__name__} on {form}, {kind}", Sequential(*layers),
                   criterion, target, (2, 8))
    yield "MSECriterion", Sequential(*_body(dtype)), MSECriterion(), np.zeros((2, 4), dtype), (2, 8)
    # images: Conv2d's four paths (float64 sums for small work, stride 1, strided small
    # fields, columns and BLAS for large fields)
    for side, first, second_kernel in ((8, 4, 3), (64, 8, 5)):
        pooled = side // 4
        model = Sequential(Conv2d(1, first, 3, dtype=dtype), ReLU(), MaxPool2d(2),
                           Conv2d(first, 2 * first, second_kernel, dtype=dtype), ReLU(),
                           MaxPool2d(2), Flatten(),
                           Linear(2 * first * pooled * pooled, 4, dtype=dtype), LogSoftMax())
        yield (f"CNN on {side}x{side} images", model, ClassNLLCriterion(log_input=True), labels,
               (2, 1, side, side))
    model = Sequential(Conv2d(1, 8, 3, stride=2, dtype=dtype), ReLU(), Flatten(),
                       Linear(8 * 32 * 32, 4, dtype=dtype), LogSoftMax())
    yield ("strided CNN on 64x64 images", model, ClassNLLCriterion(log_input=True), labels,
           (2, 1, 64, 64))
    # data-parallel training (nnjit.distributed): synchronized statistics, a shard of one rank
    model = Sequential(Linear(8, 6, dtype=dtype), BatchNormalization(0.9, sync=True),
                       Dropout(0.5), Linear(6, 4, dtype=dtype), LogSoftMax())
    shard = Shard(SelfComm(), 0, 2, 2)
    model[1]._shard = model[2]._shard = shard
    yield ("BatchNormalization(sync=True), Dropout in a shard", model,
           ClassNLLCriterion(log_input=True), labels, (2, 8))
    yield ("AvgPool2d", Sequential(AvgPool2d(2), Flatten(), Linear(16, 4, dtype=dtype),
                                   LogSoftMax()), ClassNLLCriterion(log_input=True), labels,
           (2, 1, 8, 8))
    # rows of LONG_ROW columns and up: the long-row kernels of log-softmax and cross-entropy
    yield (f"LogSoftMax over {LONG_ROW} classes",
           Sequential(Linear(8, LONG_ROW, dtype=dtype), LogSoftMax()),
           ClassNLLCriterion(log_input=True), labels, (2, 8))
    yield (f"CrossEntropyCriterion over {LONG_ROW} classes",
           Sequential(Linear(8, LONG_ROW, dtype=dtype)), CrossEntropyCriterion(), labels, (2, 8))


def _compile_item(make_plan, dtype_name, index):
    """Compile item ``index`` of make_plan(dtype) into the cache; returns (dtype name,
    description, seconds, entries saved, entries found cached). Runs in a worker process."""
    dtype = np.dtype(dtype_name)
    # only this item's models are built, not the whole plan's
    description, model, criterion, target, shape = next(
        itertools.islice(make_plan(dtype), index, None))
    saves, hits = _cache.STATS["saves"], _cache.STATS["hits"]
    start = time.perf_counter()
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    warmup(model, x, criterion, target)
    return (dtype_name, description, time.perf_counter() - start,
            _cache.STATS["saves"] - saves, _cache.STATS["hits"] - hits)


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fill(make_plan=plan, jobs=1, out=sys.stdout):
    """Compile every item of make_plan (a module-level function: workers import it) for
    float32 and float64, in ``jobs`` processes; returns (entries saved, entries found cached).
    Compiling is single-threaded and Numba's lock keeps one process to one compile at a time,
    so more processes fill the cache faster; its writers lock the folder while they write."""
    items = [(np.dtype(dtype).name, index)
             for dtype in (np.float32, np.float64)
             for index, _ in enumerate(make_plan(np.dtype(dtype)))]
    # the plans end with the slowest items (the CNNs): handing those out first keeps one
    # process from being left alone with a long one at the end
    items.reverse()
    saves = hits = 0

    def report(result):
        nonlocal saves, hits
        dtype_name, description, seconds, saved, found = result
        saves, hits = saves + saved, hits + found
        print(f"  {dtype_name:8s} {description:55s} {seconds:6.1f} s", file=out, flush=True)

    if jobs <= 1:
        for item in items:
            report(_compile_item(make_plan, *item))
        return saves, hits
    # spawn, not fork: a fork would copy this process's thread pools and locks. An executor,
    # not a Pool: a worker killed outright (LLVM aborting on an assertion) breaks it and raises
    # here, where a Pool would wait for that worker's result forever.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(jobs, len(items)), mp_context=context) as pool:
        futures = [pool.submit(_compile_item, make_plan, *item) for item in items]
        try:
            for future in as_completed(futures):
                report(future.result())
        except BrokenProcessPool as error:
            raise SystemExit("python -m nnjit compile: a compiling process died without a "
                             "Python error (a crash in Numba or LLVM); run with --jobs 1 to "
                             "see which model it was compiling") from error
    return saves, hits


def _jobs(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"--jobs takes a whole number of processes, 1 or more, got {text!r}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nnjit compile", description=__doc__)
    parser.add_argument("--jobs", type=_jobs, default=usable_cpus(),
                        help="processes compiling at once (default: the CPUs this process may use)")
    args = parser.parse_args(argv)
    if not _cache.enabled():
        raise SystemExit("python -m nnjit compile: the kernel cache is off (NNJIT_CACHE=0, or "
                         "this Numba lacks what the cache needs): nothing to fill")
    print(f"compiling into {_cache.folder()} with {args.jobs} process"
          f"{'es' if args.jobs > 1 else ''}", flush=True)
    began = time.perf_counter()
    saves, hits = fill(plan, args.jobs)
    count, size = _cache.entries(_cache.folder())
    print(f"done in {time.perf_counter() - began:.1f} s: {saves} compiled and saved, "
          f"{hits} already cached; the folder holds {count} files, {size / 2**20:.1f} MB")
