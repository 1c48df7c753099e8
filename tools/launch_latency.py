"""Whether Numba's second thread takes part in a short parallel pass. A prange fill of 1, 4 and
16 MB in two halves records which thread wrote each half; per threading layer (a fresh process
each, as Numba picks its layer once): in how many calls both threads took part, the median
time of those calls and of the others (the calling thread did both halves before the worker
joined), beside the serial fill. 20 bursts of 100 back-to-back calls after 10 ms pauses, us.

    python tools/launch_latency.py [--layers tbb omp] [--unbound]

It first makes one nnjit parallel launch, as every nnjit program does before its kernels
matter: that binds TBB's workers off the calling thread's CPU (kernels/_threads.py);
``--unbound`` adds a TBB run without that (NNJIT_BIND_WORKERS=0).
"""
import argparse
import os
import subprocess
import sys

CHILD = r"""
import statistics
import time
import numba
import numpy as np
from numba import prange

import nnjit  # loads pip's TBB for Numba, as every nnjit program does
from nnjit.kernels import _threads


@numba.njit(parallel=True)
def fill_in_halves(out, writers):
    n = out.shape[0]
    for half in prange(2):
        out[half * n // 2:(half + 1) * n // 2] = 0
        writers[half] = numba.get_thread_id()


@numba.njit
def fill(out):
    out[:] = 0


def median(times):
    return f"{statistics.median(times):6.1f}" if times else "     -"


nnjit.LeakyReLU().forward(np.ones((512, 1024), np.float32))  # nnjit's first parallel launch
writers = np.zeros(2, np.int64)
fill_in_halves(np.empty(2, np.float32), writers)
print(f"{numba.threading_layer()}, {numba.get_num_threads()} threads, workers: "
      f"{_threads.binding()['state']}")
for megabytes in (1, 4, 16):
    out = np.empty(megabytes * 2**18, np.float32)
    fill_in_halves(out, writers)
    fill(out)
    both, one, serial = [], [], []
    for burst in range(20):
        time.sleep(0.01)
        for call in range(100):
            start = time.perf_counter()
            fill_in_halves(out, writers)
            elapsed = (time.perf_counter() - start) * 1e6
            (both if writers[0] != writers[1] else one).append(elapsed)
    for burst in range(5):
        time.sleep(0.01)
        for call in range(100):
            start = time.perf_counter()
            fill(out)
            serial.append((time.perf_counter() - start) * 1e6)
    print(f"  fill {megabytes:2d} MB: both threads in {len(both):4d} of {len(both) + len(one)} "
          f"calls, median {median(both)}; one thread: median {median(one)}; serial fill "
          f"{median(serial)}", flush=True)
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="+", default=["tbb", "omp"])
    parser.add_argument("--unbound", action="store_true",
                        help="also run TBB with NNJIT_BIND_WORKERS=0 (workers on any CPU)")
    args = parser.parse_args(argv)
    runs = [(layer, "1") for layer in args.layers]
    if args.unbound and "tbb" in args.layers:
        runs.insert(args.layers.index("tbb") + 1, ("tbb", "0"))
    for layer, bind in runs:
        env = dict(os.environ, NUMBA_THREADING_LAYER=layer, NNJIT_BIND_WORKERS=bind)
        done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True)
        if done.returncode:
            print(f"{layer}: not available here ({done.stderr.strip().splitlines()[-1]})")
        else:
            print(done.stdout.rstrip(), flush=True)


if __name__ == "__main__":
    main()
