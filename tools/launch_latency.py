"""Whether Numba's second thread takes part in a short parallel pass: a prange copy of 1 MB
and of 16 MB, parallel against serial, under each threading layer (a fresh process each, as
Numba picks its layer once). Where the parallel copy takes the serial time, the worker did not
join before the calling thread had done the whole range; the empty launch is the cost of
asking. Back-to-back calls, medians of 300 (1 MB) or 30 (16 MB) calls over 5 rounds, us.

    python tools/launch_latency.py [--layers tbb omp]
"""
import argparse
import os
import subprocess
import sys

CHILD = r"""
import statistics
import numba
import numpy as np
from numba import prange
from _timing import median_seconds

import nnjit  # noqa: F401 (loads pip's TBB for Numba, as every nnjit program does)


def copy(a, out):
    for k in prange(a.shape[0]):
        out[k] = a[k]


parallel, serial = numba.njit(parallel=True)(copy), numba.njit(copy)


@numba.njit(parallel=True)
def launch(out):
    for k in prange(out.shape[0]):
        out[k] = k


marks = np.empty(numba.get_num_threads())
cases = {"empty launch": (lambda: launch(marks), 300)}
for megabytes in (1, 16):
    a = np.ones(megabytes * 2**18, np.float32)
    out = np.empty_like(a)
    calls = 300 if megabytes == 1 else 30
    cases[f"copy {megabytes} MB, parallel"] = (lambda a=a, out=out: parallel(a, out), calls)
    cases[f"copy {megabytes} MB, serial"] = (lambda a=a, out=out: serial(a, out), calls)
rounds = {name: [] for name in cases}
for _ in range(5):
    for name, (call, calls) in cases.items():
        rounds[name].append(median_seconds(call, calls) * 1e6)
layer = numba.threading_layer()
print(f"{layer}, {numba.get_num_threads()} threads: " + ", ".join(
    f"{name} {statistics.median(times):.1f}" for name, times in rounds.items()))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="+", default=["tbb", "omp"])
    args = parser.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    for layer in args.layers:
        env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
        env["PYTHONPATH"] = os.pathsep.join([here, env.get("PYTHONPATH", "")])
        done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True)
        if done.returncode:
            print(f"{layer}: not available here ({done.stderr.strip().splitlines()[-1]})")
        else:
            print(done.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
