"""Start-up cost in a fresh process: what a user waits for before the first batch, with the
compiled-kernel cache empty ("cold": compile and save) and filled by an earlier process
("warm": load), and torch's first step for comparison."""
import os
import shutil
import subprocess
import sys
import tempfile

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

# import included: the whole wait before a first training step of issue 12's model
FIRST_STEP = {
    "nnjit": """
import time
start = time.perf_counter()
import numpy as np
import nnjit
model = nnjit.Sequential(nnjit.Linear(784, 256), nnjit.BatchNormalization(0.9), nnjit.LeakyReLU(),
                         nnjit.Dropout(0.5), nnjit.Linear(256, 10), nnjit.LogSoftMax())
criterion = nnjit.ClassNLLCriterion(log_input=True)
rng = np.random.default_rng(0)
x, y = rng.standard_normal((128, 784)).astype(np.float32), rng.integers(0, 10, 128)
out = model.forward(x)
criterion.forward(out, y)
model.backward(x, criterion.backward(out, y))
nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(),
                     {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}, {})
print(time.perf_counter() - start)
""",
    "torch": """
import time
start = time.perf_counter()
import torch
model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.BatchNorm1d(256),
                            torch.nn.LeakyReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(256, 10),
                            torch.nn.LogSoftmax(dim=1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))
loss = torch.nn.functional.nll_loss(model(x), y)
loss.backward()
optimizer.step()
print(time.perf_counter() - start)
""",
}

LAYERS = {
    "SoftMax": "nnjit.SoftMax()",
    "Linear": "nnjit.Linear(1000, 1000, dtype={dtype!r})",
    "BatchNormalization": "nnjit.BatchNormalization(0.9)",
    "Dropout": "nnjit.Dropout(0.5)",
}


def _seconds_in_fresh_process(code, cache_folder):
    env = dict(os.environ, NNJIT_CACHE_DIR=cache_folder)
    env.pop("NNJIT_CACHE", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env=env)
    return float(result.stdout.split()[-1])


class _CacheStates:
    """setup gives each measurement its own cache folder: empty for "cold", filled by a
    first process for "warm"."""
    unit = "seconds"

    def _prepare(self, cache, code):
        self.folder = tempfile.mkdtemp(prefix="nnjit-bench-cache-")
        if cache == "warm":
            _seconds_in_fresh_process(code, self.folder)

    def teardown(self, *params):
        shutil.rmtree(self.folder, ignore_errors=True)


class FirstCall(_CacheStates):
    """A layer's first forward+backward (one kernel variant) in a fresh process."""
    params = [list(LAYERS), DTYPES, ["cold", "warm"]]
    param_names = ["layer", "dtype", "cache"]

    def _code(self, layer, dtype):
        return FIRST_CALL.format(module=LAYERS[layer].format(dtype=dtype), dtype=dtype)

    def setup(self, layer, dtype, cache):
        self._prepare(cache, self._code(layer, dtype))

    def track_forward_backward(self, layer, dtype, cache):
        return _seconds_in_fresh_process(self._code(layer, dtype), self.folder)


class Warmup(_CacheStates):
    """``nnjit.warmup`` of a small MLP: both kernel variants, both modes, both optimizers."""
    params = [DTYPES, ["cold", "warm"]]
    param_names = ["dtype", "cache"]

    def setup(self, dtype, cache):
        self._prepare(cache, WARMUP.format(dtype=dtype))

    def track_mlp(self, dtype, cache):
        return _seconds_in_fresh_process(WARMUP.format(dtype=dtype), self.folder)


class FirstTrainingStep(_CacheStates):
    """``import`` and the first training step of Linear-BatchNormalization-LeakyReLU-Dropout-
    Linear-LogSoftMax with NLL and Adam at batch 128, float32; torch doing the same."""
    params = [["nnjit cold", "nnjit warm", "torch"]]
    param_names = ["library"]

    def setup(self, library):
        if library == "torch":
            try:
                import torch  # noqa: F401
            except ImportError:
                raise NotImplementedError("torch is not installed") from None
        self._prepare(library.split()[-1], FIRST_STEP["nnjit"])

    def track_seconds(self, library):
        return _seconds_in_fresh_process(FIRST_STEP[library.split()[0]], self.folder)
