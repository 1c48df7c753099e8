"""Calling nnjit from several Python threads at once never aborts and never changes results."""
import os
import subprocess
import sys
import threading

import numba
import numpy as np
import pytest

import nnjit

# Steps of a small MLP with batches that alternate below and above the parallel threshold.
BATCHES = [16, 512, 3, 400]


def _train(seed, steps=200):
    rng = np.random.default_rng(seed)
    model = nnjit.Sequential(nnjit.Linear(128, 96, dtype=np.float64), nnjit.BatchNormalization(0.9),
                             nnjit.LeakyReLU(), nnjit.Dropout(0.2, seed=seed),
                             nnjit.Linear(96, 10, dtype=np.float64), nnjit.LogSoftMax())
    for module in (model[0], model[4]):  # not from the global generator, shared by threads
        module.W = rng.standard_normal(module.W.shape) * 0.1
        module.b = rng.standard_normal(module.b.shape) * 0.1
    criterion, state, losses = nnjit.CrossEntropyCriterion(), {}, []
    config = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    for step in range(steps):
        n = BATCHES[step % len(BATCHES)]
        x, y = rng.standard_normal((n, 128)), rng.integers(0, 10, n)
        model.zeroGradParameters()
        losses.append(float(criterion.forward(model.forward(x), y)))
        model.backward(x, criterion.backward(model.output, y))
        nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), config, state)
    return losses, [p.copy() for p in model[0].getParameters() + model[4].getParameters()]


def _run_threads(target, count):
    results, errors = [None] * count, []

    def work(index):
        try:
            results[index] = target(index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "deadlock"
    assert not errors, errors
    return results


def test_threading_layer_is_thread_safe():
    nnjit.ReLU().forward(np.ones(10**6))  # the first parallel launch picks the layer
    assert numba.threading_layer() in ("tbb", "omp")


def test_eight_threads_training_their_own_models_match_solo_runs():
    alone = [_train(seed) for seed in range(8)]
    together = _run_threads(_train, 8)
    for (solo_losses, solo_params), (losses, params) in zip(alone, together):
        assert losses == solo_losses
        for a, b in zip(params, solo_params):
            np.testing.assert_array_equal(a, b)


def test_one_shared_model_evaluated_from_several_threads():
    """No lock: what a call writes (outputs, buffers) is per thread, so every thread gets its
    own, right result, and the model's weights are only read."""
    rng = np.random.default_rng(0)
    model = nnjit.Sequential(nnjit.Linear(64, 32), nnjit.BatchNormalization(0.9), nnjit.ELU(),
                             nnjit.Dropout(0.3), nnjit.Linear(32, 5), nnjit.SoftMax())
    model.forward(rng.standard_normal((50, 64)).astype(np.float32))  # batch-norm statistics
    model.evaluate()
    inputs = [rng.standard_normal((3 + 600 * (i % 2) + i, 64)).astype(np.float32)
              for i in range(6)]
    want = [model.forward(x).copy() for x in inputs]
    main_output = model.output
    weights = [p.copy() for layer in model.getParameters() for p in layer]

    def evaluate(index):
        outputs = []
        for _ in range(200):
            out = model.forward(inputs[index])
            outputs.append(out.copy())
            assert model.output is out  # this thread's own buffer
        return outputs

    for index, outputs in enumerate(_run_threads(evaluate, 6)):
        for out in outputs:
            np.testing.assert_array_equal(out, want[index])
    assert model.output is main_output
    assert all(np.array_equal(a, b) for a, b in
               zip([p for layer in model.getParameters() for p in layer], weights))


def test_workqueue_layer_is_guarded_instead_of_aborting():
    code = (
        "import threading, numpy as np, numba, nnjit\n"
        "def work():\n"
        "    x = np.ones((400, 300)); m = nnjit.SoftMax()\n"
        "    for _ in range(200): m.backward(x, m.forward(x))\n"
        "ts = [threading.Thread(target=work) for _ in range(4)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "print(numba.threading_layer())\n")
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "workqueue"


class _Recorder(nnjit.Module):
    """A module written outside nnjit: it declares its own per-call attribute."""

    _per_call = ("_last_input_sum",)

    def updateOutput(self, input):
        self._last_input_sum = float(np.sum(input))
        self.output = np.asarray(input) * 2
        return self.output


def test_a_new_module_declares_its_own_per_thread_state():
    """Per-call attributes come from each class's _per_call (module.py names none of its
    subclasses' attributes): per thread, carried by copies and pickles, not shared with
    other classes."""
    import copy
    import pickle
    import threading

    module = _Recorder()
    assert "_last_input_sum" not in nnjit.Module._per_call_names
    assert {"output", "gradInput", "_last_input_sum"} <= _Recorder._per_call_names
    assert "_mask_seed" in nnjit.Dropout._per_call_names and "_mask_seed" not in _Recorder._per_call_names
    module.forward(np.ones(3))
    seen = {}

    def other_thread():
        seen["before"] = module._last_input_sum, module.output
        module.forward(np.ones(5))
        seen["after"] = module._last_input_sum

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen == {"before": (None, None), "after": 5.0}
    assert module._last_input_sum == 3.0 and module.output.shape == (3,)
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert clone._last_input_sum == 3.0 and clone.output.shape == (3,)
        clone.forward(np.ones(4))
        assert clone._last_input_sum == 4.0 and module._last_input_sum == 3.0
    bare = _Recorder.__new__(_Recorder)  # a subclass that skipped __init__
    bare.forward(np.ones(2))
    assert bare._last_input_sum == 2.0


@pytest.mark.parametrize("first, preset, expected", [
    ("nnjit", None, "4"),         # nnjit before NumPy: idle OpenBLAS threads sleep at once
    ("nnjit", "20", "20"),        # the user's own value stands
    ("numpy", None, "4"),         # NumPy (and so OpenBLAS) loaded first: its threads restarted
    ("numpy", "20", "20"),
])
def test_openblas_idle_threads_default_to_sleep_at_once(first, preset, expected):
    code = (f"import {first}, nnjit, os\n"
            "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'unset'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


SPINNING_THREADS = """
import numpy as np, nnjit, os, threading, time
a = np.ones((600, 600))
product = a @ a  # threaded: OpenBLAS's threads (re)start and work
assert product[0, 0] == 600
time.sleep(0.02)
main, running = threading.get_native_id(), 0
for _ in range(20):  # samples of every other thread's state: R while it busy-waits
    for task in os.listdir("/proc/self/task"):
        if int(task) != main:
            with open(f"/proc/self/task/{task}/stat") as stat:
                running += stat.read().rsplit(")", 1)[1].split()[0] == "R"
    time.sleep(0.002)
print(running)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="reads /proc; OpenBLAS runs threads only with 2 cores or more")
@pytest.mark.parametrize("preset", [None, "28"])
def test_openblas_threads_sleep_after_a_product_even_when_numpy_came_first(preset):
    """A program that imports NumPy before nnjit: after a threaded matrix product, OpenBLAS's
    idle threads sleep at once (they busy-waited for 0.1 s, holding the core a parallel kernel
    needs), unless the user asked for OpenBLAS's own timeout."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    done = subprocess.run([sys.executable, "-c", SPINNING_THREADS], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    running = int(done.stdout)
    if preset is None:
        assert running <= 2, f"{running} of 20 samples found a thread busy-waiting"
    else:  # 2**28 cycles: about 0.1 s at this machine's clock, longer than the samples
        assert running >= 10, f"only {running} of 20 samples found OpenBLAS's thread running"
