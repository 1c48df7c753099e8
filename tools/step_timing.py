"""Median time of one training step of a small 5-module MLP at batch 8, through the module
API: Linear(20,16)-LeakyReLU-Dropout-Linear(16,4)-LogSoftMax, NLL, Adam. At this size the
Python work per call dominates, so this is the figure for changes to the per-call path.

    python tools/step_timing.py      # prints microseconds (median of 5 medians of 2000 steps)
"""
import statistics
import time

import numpy as np

import nnjit

np.random.seed(0)
model = nnjit.Sequential(nnjit.Linear(20, 16), nnjit.LeakyReLU(), nnjit.Dropout(0.5),
                         nnjit.Linear(16, 4), nnjit.LogSoftMax())
criterion = nnjit.ClassNLLCriterion(log_input=True)
rng = np.random.default_rng(0)
x, y = rng.standard_normal((8, 20)).astype(np.float32), rng.integers(0, 4, 8)
state = {}
config = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}


def step():
    model.zeroGradParameters()
    output = model.forward(x)
    criterion.forward(output, y)
    model.backward(x, criterion.backward(output, y))
    nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), config, state)


for _ in range(200):
    step()
medians = []
for _ in range(5):
    times = []
    for _ in range(2000):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    medians.append(statistics.median(times))
print(f"{statistics.median(medians) * 1e6:.1f}")
