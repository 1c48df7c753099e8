"""nnjit's kernels right after a torch op in the same process. torch's OpenMP threads keep
spinning after each parallel op, on the core Numba's worker needs, so on 2 cores the next
nnjit pass runs on one thread. Per layer (256x1000 float32, medians of 300 calls, us): nnjit
back to back; right after a 2-thread torch op; right after a NumPy op touching as many bytes
(the cache's share of the difference); and torch's op itself.

    python tools/torch_neighbour.py          (OMP_WAIT_POLICY=PASSIVE in the environment
                                             makes torch's threads sleep at once)
"""
import os
import statistics
import time

import numpy as np
import torch

import nnjit


def median_after(call, before, calls=300):
    times = []
    for _ in range(calls):
        before()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main():
    torch.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((256, 1000)).astype(np.float32)
    scratch = np.empty_like(x)
    other = torch.randn(256, 1000)
    torch_op = lambda: torch.nn.functional.leaky_relu(other, 0.03)  # noqa: E731
    numpy_op = lambda: np.maximum(x, 0, out=scratch)  # noqa: E731
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; us")
    for name, module, torch_same in [
            ("LeakyReLU forward", nnjit.LeakyReLU(0.03), lambda t: torch.nn.functional.leaky_relu(t, 0.03)),
            ("SoftMax forward", nnjit.SoftMax(), lambda t: torch.softmax(t, 1))]:
        module.forward(x)
        tx = torch.from_numpy(x)
        for _ in range(2):
            time.sleep(0.05)
            alone = median_after(lambda: module.forward(x), lambda: None)
            after_torch = median_after(lambda: module.forward(x), torch_op)
            after_numpy = median_after(lambda: module.forward(x), numpy_op)
            time.sleep(0.05)
            torch_alone = median_after(lambda: torch_same(tx), lambda: None)
            print(f"{name}: nnjit back to back {alone:6.1f}, after a torch op {after_torch:6.1f},"
                  f" after a NumPy op {after_numpy:6.1f}; torch back to back {torch_alone:6.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
