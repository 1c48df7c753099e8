"""Why nnjit defaults OPENBLAS_THREAD_TIMEOUT to 4: a parallel Numba kernel run right after a
threaded OpenBLAS call, with OpenBLAS's idle threads left to busy-wait (its default, 2**28
cycles) and with them put to sleep at once (4); then a CNN training step (the digits CNN of
`nnjit train --model cnn`, batch 64, float32, Adam) in a program that imports NumPy before
nnjit, with the variable unset (nnjit's default applies) and set to 28. Each setting runs in a
fresh process, as OpenBLAS reads the variable when it loads; medians of 20 calls, ms.

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

CNN_STEP = r"""
import numpy as np
import nnjit
from _timing import median_seconds
from nnjit.train import build_cnn, train_step
model = build_cnn(28, 10, (16, 32), "relu", 0.0, np.float32)
criterion = nnjit.ClassNLLCriterion(log_input=True)
rng = np.random.default_rng(0)
x, labels = rng.standard_normal((64, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 64)
state, config = {}, {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}

def step():  # what `nnjit train --model cnn` runs per batch
    train_step(model, criterion, x, labels, nnjit.adam_optimizer, config, state)

print(f"CNN training step {median_seconds(step, 20, warmup=3) * 1e3:.2f}")
"""

here = os.path.dirname(os.path.abspath(__file__))


def run(code, value):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = value
    env["PYTHONPATH"] = os.pathsep.join([here, env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True)
    return result.stdout.strip()


for value in ("28 (OpenBLAS's default)", "4 (nnjit's default)"):
    print(f"OPENBLAS_THREAD_TIMEOUT={value}: {run(CHILD, value.split()[0])}", flush=True)
for _ in range(2):
    for value in (None, "28"):
        print(f"NumPy imported first, OPENBLAS_THREAD_TIMEOUT {value or 'unset'}: "
              f"{run(CNN_STEP, value)} ms", flush=True)
