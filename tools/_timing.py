"""What the tools share: the median-of-calls timer and the ROWSxCOLUMNS argument type."""
import argparse
import statistics
import time

# the pause and settling time before each measurement, as `nnjit bench` takes them
from nnjit.bench import QUIET_SECONDS, SETTLE_SECONDS


def median_seconds(call, calls, warmup=5):
    """Median wall time of call() over calls runs, after warmup runs.

    The tools time nnjit and torch in one process, taking turns. torch's OpenMP threads keep
    spinning for several milliseconds after its last op, and on 2 cores they take the cores
    from Numba's threads: LeakyReLU forward at 256x1000 measured 27.2 us right after torch
    and 18.4 us after a 20 ms pause (torch 17.7 either way). So each measurement starts with
    a 20 ms pause, then 3 ms of untimed calls that wake the measured library's own threads."""
    time.sleep(QUIET_SECONDS)
    settle_until, settled = time.perf_counter() + SETTLE_SECONDS, 0
    while settled < warmup or time.perf_counter() < settle_until:
        call()
        settled += 1
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def shape_argument(text):
    """argparse type of a --shapes value: "256x1000" -> (256, 1000)."""
    try:
        rows, columns = (int(v) for v in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is ROWSxCOLUMNS, got {text!r}") from None
    return rows, columns
