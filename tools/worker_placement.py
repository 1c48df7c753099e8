"""Where Numba's TBB worker runs, with nnjit's binding (kernels/_threads.py) and without it
(NNJIT_BIND_WORKERS=0), in fresh processes taken in turn:
- a 1 MB fill in two halves, 40 bursts of 100 calls after 10 ms pauses; each half records the
  thread and CPU it ran on. "beside": the worker ran its half on another CPU than the caller;
  "after": it ran it on the caller's CPU (so after the caller, not beside it); "alone": the
  caller did both halves. Medians in us.
- LogSoftMax forward at 256x1000 float32 through the module API, in windows of 100 calls
  every 0.1 s for --seconds: the median window, and how many windows took over 80 us (the
  parallel kernel takes about 56 us here, the serial one about 100).

    python tools/worker_placement.py [--runs 2] [--seconds 30]   # Linux, 2+ CPUs
"""
import argparse
import os
import subprocess
import sys

CHILD = r"""
import ctypes, statistics, sys, time
import numba, numpy as np
from numba import prange
import nnjit
from nnjit.kernels import _threads

libc = ctypes.CDLL(None)
getcpu = libc.sched_getcpu
getcpu.restype, getcpu.argtypes = ctypes.c_int, []


@numba.njit(parallel=True)
def fill_in_halves(out, threads, cpus):
    n = out.shape[0]
    for half in prange(2):
        out[half * n // 2:(half + 1) * n // 2] = 0
        threads[half] = numba.get_thread_id()
        cpus[half] = getcpu()


x = np.random.default_rng(0).standard_normal((256, 1000)).astype(np.float32)
layer = nnjit.LogSoftMax()
layer.forward(x)  # nnjit's first parallel launch: binds the workers unless turned off
out, threads, cpus = np.empty(2**18, np.float32), np.zeros(2, np.int64), np.zeros(2, np.int64)
fill_in_halves(out, threads, cpus)
kinds = {"beside": [], "after": [], "alone": []}
for burst in range(40):
    time.sleep(0.01)
    for call in range(100):
        start = time.perf_counter()
        fill_in_halves(out, threads, cpus)
        elapsed = (time.perf_counter() - start) * 1e6
        kind = "alone" if threads[0] == threads[1] else "beside" if cpus[0] != cpus[1] else "after"
        kinds[kind].append(elapsed)
windows, until = [], time.time() + float(sys.argv[1])
while time.time() < until:
    times = []
    for call in range(100):
        start = time.perf_counter()
        layer.forward(x)
        times.append((time.perf_counter() - start) * 1e6)
    windows.append(statistics.median(times))
    time.sleep(0.1)
fills = ", ".join(f"{kind} {len(t):4d} ({statistics.median(t):5.1f})" if t else f"{kind}    0"
                  for kind, t in kinds.items())
print(f"workers {_threads.binding()['state']:25s} fills: {fills}; LogSoftMax windows: median "
      f"{statistics.median(windows):5.1f} us, {sum(w > 80 for w in windows)} of {len(windows)} "
      "over 80 us")
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs of each setting, in turn")
    parser.add_argument("--seconds", type=float, default=30, help="seconds of LogSoftMax windows")
    args = parser.parse_args(argv)
    for _ in range(args.runs):
        for bind in ("1", "0"):
            env = dict(os.environ, NNJIT_BIND_WORKERS=bind, NUMBA_NUM_THREADS="2")
            done = subprocess.run([sys.executable, "-c", CHILD, str(args.seconds)], env=env,
                                  capture_output=True, text=True)
            print(done.stdout.strip() if done.returncode == 0 else done.stderr.strip()[-2000:],
                  flush=True)


if __name__ == "__main__":
    main()
