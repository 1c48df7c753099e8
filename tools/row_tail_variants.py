"""Softmax forward's serial kernel against row-loop variants tried for rows of 17-127 columns,
where LLVM's vector loop (16 float32 lanes, 4 vectors per step) leaves most of a row to scalar
code. One variant was kept where it wins, the others dropped (docs/performance.md, "Rows of 17
to 127 columns"); this tool keeps their figures reproducible.

    python tools/row_tail_variants.py [--dtype float32] [--shapes 64x10 256x100 256x1000]
    python tools/row_tail_variants.py --llvm-option=-force-vector-interleave=1

Variants: "bounded", every row loop runs over range(c & 127) inside a branch on c < 128, so
LLVM knows the loop runs at most 127 times and takes fewer vectors per step (nnjit's kernels
now do this at the widths where it wins, kernels/_vmath.py short_rows); "separate", the
exps written first and summed in a loop of their own (LLVM vectorizes the end of a loop without
a sum). --llvm-option sets an LLVM option for the whole process before anything compiles
(e.g. one vector per step everywhere); compare its "current" column with a run without it.
Every variant, the current kernel's body included, is compiled in the process (not loaded from
nnjit's cache).

Medians of five medians of up to 2000 calls, us; "x" is current / variant.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import shape_argument  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--shapes", nargs="+", type=shape_argument,
                        default=[(64, 10), (256, 37), (256, 64), (256, 100), (128, 200),
                                 (256, 1000), (1024, 1024)])
    parser.add_argument("--llvm-option", action="append", default=[],
                        help="an LLVM command-line option, set before anything compiles")
    args = parser.parse_args(argv)

    import llvmlite.binding as llvm
    for option in args.llvm_option:
        llvm.set_option("", option)

    import time

    import numba
    import numpy as np

    from nnjit.kernels import softmax
    from nnjit.kernels._config import FASTMATH
    from nnjit.kernels._vmath import row_max, vexp_nonpositive

    options = dict(fastmath=FASTMATH, error_model="numpy", nogil=True)

    @numba.njit(**options)
    def bounded(input, output):
        n, c = input.shape
        for i in range(n):
            if c < 128:
                softmax._softmax_row(input[i], output[i], c & 127)
            else:
                softmax._softmax_row(input[i], output[i], c)

    @numba.njit(**options)
    def separate(input, output):
        n, c = input.shape
        for i in range(n):
            top = row_max(input, i)
            for j in range(c):
                output[i, j] = vexp_nonpositive(input[i, j] - top)
            total = input.dtype.type(0)
            for j in range(c):
                total += output[i, j]
            factor = input.dtype.type(1) / total
            for j in range(c):
                output[i, j] *= factor

    def median_us(call, calls):
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e6

    # compiled here rather than taken from nnjit's cache, so that --llvm-option applies to it
    current = numba.njit(**options)(softmax.softmax_update_output.serial.py_func)
    variants = {"current": current, "bounded": bounded,
                "separate": separate}
    print(f"{args.dtype}, serial softmax forward, us; LLVM options: "
          f"{' '.join(args.llvm_option) or 'none'}")
    print(f"{'shape':>10s} " + " ".join(f"{name:>9s}" for name in variants) +
          " " + " ".join(f"{'x ' + name:>10s}" for name in list(variants)[1:]))
    for n, c in args.shapes:
        x = (np.random.default_rng(0).standard_normal((n, c)) * 3).astype(args.dtype)
        expected = np.empty_like(x)
        variants["current"](x, expected)
        outputs = {}
        for name, variant in variants.items():
            outputs[name] = np.empty_like(x)
            variant(x, outputs[name])
            np.testing.assert_allclose(outputs[name], expected, rtol=1e-5 if x.itemsize == 4 else 1e-12)
        calls = max(30, min(2000, 3_000_000 // (n * c)))
        rounds = {name: [] for name in variants}
        for _ in range(5):
            for name, variant in variants.items():
                out = outputs[name]
                rounds[name].append(median_us(lambda: variant(x, out), calls))
        median = {name: statistics.median(times) for name, times in rounds.items()}
        print(f"{f'{n}x{c}':>10s} " + " ".join(f"{median[name]:9.1f}" for name in variants) + " " +
              " ".join(f"{median['current'] / median[name]:10.2f}" for name in list(variants)[1:]),
              flush=True)


if __name__ == "__main__":
    main()
