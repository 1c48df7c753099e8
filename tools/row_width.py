"""Time per element of the row kernels' serial variants by row width, 64 rows: where LLVM's
vector loop leaves a row's end to scalar code, the time per element rises (a row of 127
against one of 128).

    python tools/row_width.py [--dtype float32] [--widths 10 16 100 128 1000]

Best of three medians of 2000 calls, ns per element.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import median_seconds  # noqa: E402

from nnjit import kernels as K  # noqa: E402

KERNELS = ("softmax_update_output", "log_softmax_update_output")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--widths", nargs="+", type=int,
                        default=[10, 16, 32, 64, 96, 100, 112, 127, 128, 1000, 1024])
    args = parser.parse_args(argv)
    for name in KERNELS:
        kernel = getattr(K, name)
        times = []
        for width in args.widths:
            x = np.random.default_rng(0).standard_normal((64, width)).astype(args.dtype)
            out = np.empty_like(x)
            best = min(median_seconds(lambda: kernel.serial(x, out), 2000) for _ in range(3))
            times.append(f"{width}:{best * 1e9 / x.size:.2f}")
        print(f"{name} ({args.dtype}) ns/element by row width:", " ".join(times), flush=True)


if __name__ == "__main__":
    main()
