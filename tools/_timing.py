"""The median-of-calls timer the tools share."""
import statistics
import time


def median_seconds(call, calls, warmup=5):
    """Median wall time of call() over calls runs, after warmup runs."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
