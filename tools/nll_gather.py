"""ClassNLLCriterion(log_input=True) forward with labels at a large batch: a gather of one
element per row. Its kernel's serial and parallel variants, the kernel's dispatch (which picks
one), the module call, and torch's nll_loss, in five interleaved rounds; medians in us.

    python tools/nll_gather.py [--shapes 4096x1024 256x1000]   # needs torch

The parallel variant run back to back finds TBB's worker awake from the launch before; a
module call leaves a few microseconds of Python between launches, the dispatch fewer.
"""
import argparse
import statistics
import sys

import numba
import numpy as np

import nnjit
from _timing import median_seconds, shape_argument
from nnjit import kernels as K


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", type=shape_argument,
                        default=[(4096, 1024), (256, 1000)])
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("tools/nll_gather.py compares with torch: pip install torch==2.13.0")
    torch.set_num_threads(numba.get_num_threads())
    kernel = K.nll_log_labels_update_output
    print(f"{'dtype':8s} {'shape':>10s} {'serial':>8s} {'parallel':>9s} {'dispatch':>9s} "
          f"{'module':>8s} {'torch':>8s} {'torch/module':>13s}")
    for dtype in ("float32", "float64"):
        for shape in args.shapes:
            rng = np.random.default_rng(0)
            scores = rng.standard_normal(shape)
            log_p = (scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))).astype(dtype)
            labels = rng.integers(0, shape[1], shape[0])
            rows = np.empty(shape[0], dtype)
            criterion = nnjit.ClassNLLCriterion(log_input=True)
            t_log_p, t_labels = torch.from_numpy(log_p), torch.from_numpy(labels)
            paths = {"serial": lambda: kernel.serial(log_p, labels, rows),
                     "parallel": lambda: kernel.parallel(log_p, labels, rows),
                     "dispatch": lambda: kernel(log_p, labels, rows),
                     "module": lambda: criterion.forward(log_p, labels),
                     "torch": lambda: torch.nn.functional.nll_loss(t_log_p, t_labels)}
            rounds = {name: [] for name in paths}
            for _ in range(5):
                for name, call in paths.items():
                    rounds[name].append(median_seconds(call, 300))
            us = {name: statistics.median(times) * 1e6 for name, times in rounds.items()}
            print(f"{dtype:8s} {'x'.join(map(str, shape)):>10s} {us['serial']:8.1f} "
                  f"{us['parallel']:9.1f} {us['dispatch']:9.1f} {us['module']:8.1f} "
                  f"{us['torch']:8.1f} {us['torch'] / us['module']:13.2f}")


if __name__ == "__main__":
    main()
