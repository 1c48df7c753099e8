"""LogSoftMax forward taken apart, serial, on one core: the row maxima alone; the maxima and
the counted sums of exps (as the kernel took them until 2026-11-30); the same with a plain
sum; one exp pass over the whole array (read, exp, write: the floor tools/memory_floor.py
uses); the three passes with a plain sum; and the kernel's serial variant. Medians in us.

    python tools/log_softmax_passes.py [--shapes 256x1000 4096x1024 256x64]

What the op costs beyond one exp pass is its structure: a pass for the maximum, a pass for
the sum of exps, and a pass writing x - max - log(sum), each row read three times. Since
2026-11-30 the kernel's sum pass also stores x - max, and its last pass subtracts log(sum) in
the output row, in L1: the "kernel" column against "3 passes plain" shows what that saves.
"""
import argparse
import statistics
import time

import numba
import numpy as np

from _timing import shape_argument
from nnjit.kernels import log_softmax_update_output
from nnjit.kernels._config import FASTMATH
from nnjit.kernels._vmath import (counted_exp_sum, inlined, log_of_counted_total, row_max_of,
                                  vexp_nonpositive)

_jit = numba.njit(fastmath=FASTMATH, error_model="numpy")


@numba.njit(fastmath={"contract"}, error_model="numpy")
def minus_both(x, top, log_total):
    """(x - top) - log_total in that order: without "reassoc", as the kernel keeps it."""
    return (x - top) - log_total


@inlined
def row_log_total(row, top, m):
    ties, rest = counted_exp_sum(row, top, m)
    return row.dtype.type(log_of_counted_total(ties, rest))


@_jit
def maxima(x, out_rows):
    for i in range(x.shape[0]):
        out_rows[i] = row_max_of(x[i], x.shape[1])


@_jit
def maxima_and_counted_sums(x, out_rows):
    for i in range(x.shape[0]):
        top = row_max_of(x[i], x.shape[1])
        out_rows[i] = row_log_total(x[i], top, x.shape[1])


@inlined
def plain_log_total(row, top):
    """log(sum(exp(row - top))) with the exps summed plainly, the 1 of the maximum in the sum."""
    total = row.dtype.type(0)
    for j in range(row.shape[0]):
        total += vexp_nonpositive(row[j] - top)
    return row.dtype.type(np.log(total))


@_jit
def maxima_and_plain_sums(x, out_rows):
    for i in range(x.shape[0]):
        out_rows[i] = plain_log_total(x[i], row_max_of(x[i], x.shape[1]))


@_jit
def exp_pass(x, out):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = vexp_nonpositive(x[i, j])


@_jit
def three_passes_plain_sum(x, out):
    for i in range(x.shape[0]):
        row = x[i]
        top = row_max_of(row, x.shape[1])
        log_total = plain_log_total(row, top)
        for j in range(x.shape[1]):
            out[i, j] = minus_both(row[j], top, log_total)


def _median_us(call, seconds=0.3):
    for _ in range(3):
        call()
    times, stop = [], time.perf_counter() + seconds
    while len(times) < 5 or time.perf_counter() < stop:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", type=shape_argument,
                        default=[(256, 1000), (4096, 1024), (256, 64)])
    args = parser.parse_args()
    columns = ["maxima", "+counted sums", "+plain sums", "exp pass", "3 passes plain",
               "kernel"]
    print(f"{'dtype':8s} {'shape':>10s}" + "".join(f" {c:>14s}" for c in columns))
    for dtype in ("float32", "float64"):
        for shape in args.shapes:
            x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
            out, rows = np.empty_like(x), np.empty(shape[0], dtype)
            calls = [lambda: maxima(x, rows), lambda: maxima_and_counted_sums(x, rows),
                     lambda: maxima_and_plain_sums(x, rows), lambda: exp_pass(x, out),
                     lambda: three_passes_plain_sum(x, out),
                     lambda: log_softmax_update_output.serial(x, out)]
            rounds = [[] for _ in calls]
            for _ in range(3):
                for call, times in zip(calls, rounds):
                    times.append(_median_us(call))
            print(f"{dtype:8s} {'x'.join(map(str, shape)):>10s}"
                  + "".join(f" {statistics.median(times):14.1f}" for times in rounds))


if __name__ == "__main__":
    main()
