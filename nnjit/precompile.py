"""``python -m nnjit compile``: compile every kernel the layer API reaches, in float32 and
float64, serial and parallel variants, into the compiled-kernel cache, so that later processes
start at full speed (see docs/cache.md)."""
import argparse
import time

import numpy as np

from .activations import ELU, LeakyReLU, ReLU, SoftPlus
from .containers import Sequential
from .conv import AvgPool2d, Conv2d, MaxPool2d
from .criterions import ClassNLLCriterion, CrossEntropyCriterion, MSECriterion
from .distributed import SelfComm, Shard
from .dropout import Dropout
from .kernels import _cache
from .linear import Linear
from .normalization import BatchNormalization, ChannelwiseScaling
from .reshape import Flatten
from .softmax import LogSoftMax, SoftMax
from .warmup import warmup


def _body(dtype):
    return [Linear(8, 6, dtype=dtype), BatchNormalization(0.9), ChannelwiseScaling(6, dtype=dtype),
            ReLU(), LeakyReLU(), ELU(), SoftPlus(), Dropout(0.5), Linear(6, 4, dtype=dtype)]


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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nnjit compile", description=__doc__)
    parser.parse_args(argv)
    if not _cache.enabled():
        raise SystemExit("python -m nnjit compile: the kernel cache is off (NNJIT_CACHE=0, or "
                         "this Numba lacks what the cache needs): nothing to fill")
    print(f"compiling into {_cache.folder()}", flush=True)
    began = time.perf_counter()
    for dtype in (np.float32, np.float64):
        for description, model, criterion, target, shape in plan(np.dtype(dtype)):
            start = time.perf_counter()
            x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
            warmup(model, x, criterion, target)
            print(f"  {np.dtype(dtype).name:8s} {description:55s} "
                  f"{time.perf_counter() - start:6.1f} s", flush=True)
    count, size = _cache.entries(_cache.folder())
    stats = _cache.STATS
    print(f"done in {time.perf_counter() - began:.1f} s: {stats['saves']} compiled and saved, "
          f"{stats['hits']} already cached; the folder holds {count} files, {size / 2**20:.1f} MB")
