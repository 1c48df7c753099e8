"""First-call cost in a fresh process: what a user waits for before the first batch."""
import subprocess
import sys

from .common import DTYPES

FIRST_CALL = """
import time
import numpy as np
import nnjit
x = np.random.default_rng(0).standard_normal((256, 1000)).astype({dtype!r})
module = {module}
start = time.perf_counter()
y = module.forward(x)
module.backward(x, np.ones_like(y))
print(time.perf_counter() - start)
"""

WARMUP = """
import time
import numpy as np
import nnjit
model = nnjit.Sequential(nnjit.Linear(784, 256, dtype={dtype!r}), nnjit.LeakyReLU(),
                         nnjit.Dropout(0.5), nnjit.Linear(256, 10, dtype={dtype!r}),
                         nnjit.LogSoftMax())
x = np.zeros((2, 784), {dtype!r})
start = time.perf_counter()
nnjit.warmup(model, x, nnjit.ClassNLLCriterion(log_input=True), np.zeros(2, np.int64))
print(time.perf_counter() - start)
"""

LAYERS = {
    "SoftMax": "nnjit.SoftMax()",
    "Linear": "nnjit.Linear(1000, 1000, dtype={dtype!r})",
    "BatchNormalization": "nnjit.BatchNormalization(0.9)",
    "Dropout": "nnjit.Dropout(0.5)",
}


def _seconds_in_fresh_process(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return float(result.stdout.split()[-1])


class FirstCall:
    """Compile time (and the one call) of a layer's forward+backward, one variant."""
    params = [list(LAYERS), DTYPES]
    param_names = ["layer", "dtype"]
    unit = "seconds"

    def track_forward_backward(self, layer, dtype):
        module = LAYERS[layer].format(dtype=dtype)
        return _seconds_in_fresh_process(FIRST_CALL.format(module=module, dtype=dtype))


class Warmup:
    """``nnjit.warmup`` of a small MLP: both kernel variants, both modes, both optimizers."""
    params = [DTYPES]
    param_names = ["dtype"]
    unit = "seconds"

    def track_mlp(self, dtype):
        return _seconds_in_fresh_process(WARMUP.format(dtype=dtype))
