"""The per-call floor of a small criterion call: ClassNLLCriterion(log_input=True).forward at
64x10 float32 with labels, beside an empty Numba function of the kernel's three arrays, the
kernel's serial variant, the kernel through nnjit's dispatch, and torch's F.nll_loss (if
installed). Medians of five rounds of 20,000 calls each, in a tight loop, every case in turn:
timed in rounds, not call by call as tools/_timing.py does, because a timer read around each
call would add its own cost to calls of a fraction of a microsecond.

    python tools/call_floor.py
"""
import statistics
import time

import numba
import numpy as np

import nnjit
from nnjit import kernels as K


@numba.njit(nogil=True)
def _empty(a, b, c):
    return 0.0


def _median_us(call, calls=20_000, rounds=5):
    for _ in range(2_000):
        call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times) * 1e6


def main():
    rng = np.random.default_rng(0)
    x = np.log(rng.dirichlet(np.ones(10), 64)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    rows = np.empty(64, np.float32)
    criterion = nnjit.ClassNLLCriterion(log_input=True)
    kernel = K.nll_log_labels_update_output
    cases = {"empty njit(3 arrays)": lambda: _empty(x, labels, rows),
             "kernel.serial": lambda: kernel.serial(x, labels, rows),
             "kernel": lambda: kernel(x, labels, rows),
             "module forward": lambda: criterion.forward(x, labels)}
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch is not installed: its row is left out")
    else:
        torch.set_num_threads(2)
        scores, targets = torch.from_numpy(x), torch.from_numpy(labels)
        cases["torch F.nll_loss"] = lambda: F.nll_loss(scores, targets)
    medians = {}
    for _ in range(3):
        for name, call in cases.items():
            medians.setdefault(name, []).append(_median_us(call))
    for name, values in medians.items():
        print(f"{name:22s} {statistics.median(values):.2f} us")


if __name__ == "__main__":
    main()
