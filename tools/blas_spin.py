"""Why nnjit defaults OPENBLAS_THREAD_TIMEOUT to 4: a parallel Numba kernel run right after a
threaded OpenBLAS call, with OpenBLAS's idle threads left to busy-wait (its default, 2**28
cycles) and with them put to sleep at once (4). Each setting runs in a fresh process, as
OpenBLAS reads the variable when it loads; medians of 20 calls, ms.

    python tools/blas_spin.py
"""
import os
import subprocess
import sys

CHILD = r"""
import numpy as np
from _timing import median_seconds
import nnjit.kernels as K
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 16, 14, 14)).astype(np.float32)
w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
out = np.empty((64, 32, 14, 14), np.float32)
padded = np.empty(K.wide_padded_size(64, 16, 14, 14, 1, 1), np.float32)
a = rng.standard_normal((256, 256)).astype(np.float32)

def kernel():
    K.conv2d_wide_update_output(x, w, w[:, 0, 0, 0].copy(), out, 1, 1, padded)

def after_gemm():
    a @ a  # a threaded OpenBLAS call, then the kernel
    kernel()

alone = median_seconds(kernel, 20, warmup=3)
gemm = median_seconds(lambda: a @ a, 20, warmup=3)
both = median_seconds(after_gemm, 20, warmup=3)
print(f"kernel alone {alone * 1e3:.3f}  GEMM alone {gemm * 1e3:.3f}  GEMM then kernel "
      f"{both * 1e3:.3f}  (excess {(both - alone - gemm) * 1e3:+.3f})")
"""

here = os.path.dirname(os.path.abspath(__file__))
for value in ("28 (OpenBLAS's default)", "4 (nnjit's default)"):
    env = dict(os.environ, OPENBLAS_THREAD_TIMEOUT=value.split()[0])
    env["PYTHONPATH"] = os.pathsep.join([here, env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                            text=True, check=True)
    print(f"OPENBLAS_THREAD_TIMEOUT={value}: {result.stdout.strip()}", flush=True)
