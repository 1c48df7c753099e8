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


# Run in a fresh process: the binding happens once, at a process's first parallel launch.
BINDING_PROBE = r"""
import json, os, sys, threading
import numba, numpy as np
import nnjit
from nnjit.kernels import _threads

def affinities():
    found = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            found[int(tid)] = sorted(os.sched_getaffinity(int(tid)))
        except OSError:
            pass
    return found

usable = sorted(os.sched_getaffinity(0))
x = np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)
layer = nnjit.LeakyReLU()
assert np.array_equal(layer.forward(x), np.where(x > 0, x, np.float32(0.03) * x))
report = {"layer": numba.threading_layer(), "usable": usable, "me": threading.get_native_id(),
          "binding": _threads.binding(), "affinities": affinities()}
if sys.argv[1] == "move" and report["binding"]["state"] == "bound":
    # put this thread on the workers' CPU: parallel launches from it move the workers off it
    target = [c for c in usable if c != report["binding"]["cpu"]][0]
    os.sched_setaffinity(0, {target})
    for _ in range(16):
        layer.forward(x)
    report["moved"] = {"target": target, "binding": _threads.binding(), "affinities": affinities()}
    os.sched_setaffinity(0, usable)
if sys.argv[1] == "fork" and report["binding"]["state"] == "bound":
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        layer.forward(x)
        os.write(write, json.dumps({"binding": _threads.binding(), "me": threading.get_native_id(),
                                    "affinities": affinities()}).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    report["child"] = json.loads(os.read(read, 1 << 16))
print(json.dumps(report))
"""


def _binding_probe(mode="plain", **env):
    import json

    done = subprocess.run([sys.executable, "-c", BINDING_PROBE, mode], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, **env))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["layer"] != "tbb":
        pytest.skip(f"binding is for Numba's TBB layer, not {report['layer']}")
    return report


def _assert_workers_off(binding, affinities, usable, cpu, me):
    assert binding["state"] == "bound" and binding["cpu"] == cpu
    others = sorted(set(usable) - {cpu})
    workers = {int(tid) for tid in binding["workers"]}
    assert workers and me not in workers
    for tid in workers:
        assert affinities[str(tid)] == others, (tid, affinities)
    assert affinities[str(me)] == usable  # the launching thread is never restricted


two_cpus = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="binding workers needs Linux and two usable CPUs")


@two_cpus
def test_tbb_workers_run_off_the_launching_threads_cpu():
    report = _binding_probe(NUMBA_NUM_THREADS="2")
    binding = report["binding"]
    _assert_workers_off(binding, report["affinities"], report["usable"], binding["cpu"],
                        report["me"])
    assert binding["moves"] == 0


@two_cpus
def test_workers_move_when_the_launching_thread_moves_onto_their_cpu():
    report = _binding_probe("move", NUMBA_NUM_THREADS="2")
    moved = report["moved"]
    assert moved["binding"]["moves"] >= 1
    assert moved["binding"]["cpu"] == moved["target"]
    others = sorted(set(report["usable"]) - {moved["target"]})
    for tid in moved["binding"]["workers"]:
        assert moved["affinities"][tid] == others


@two_cpus
def test_a_forked_child_binds_its_own_workers():
    report = _binding_probe("fork", NUMBA_NUM_THREADS="2")
    child = report["child"]
    _assert_workers_off(child["binding"], child["affinities"], report["usable"],
                        child["binding"]["cpu"], child["me"])
    assert not set(child["binding"]["workers"]) & set(report["binding"]["workers"])


@two_cpus
@pytest.mark.parametrize("env, state", [
    ({"NNJIT_BIND_WORKERS": "0", "NUMBA_NUM_THREADS": "2"}, "off (NNJIT_BIND_WORKERS)"),
    ({"NUMBA_NUM_THREADS": "1"}, "one thread or one usable CPU"),
    ({"NUMBA_NUM_THREADS": str(len(os.sched_getaffinity(0)) + 1)
      if hasattr(os, "sched_getaffinity") else "3"}, "more Numba threads than usable CPUs")])
def test_workers_left_where_binding_is_off_or_cannot_help(env, state):
    report = _binding_probe(**env)
    assert report["binding"]["state"] == state
    assert all(cpus == report["usable"] for cpus in report["affinities"].values())


def test_a_failed_binding_leaves_the_workers_and_raises_nothing(monkeypatch):
    from nnjit.kernels import _threads

    def broken(*args):
        raise OSError("no such thread")

    monkeypatch.setattr(_threads, "_thread_ids_parallel", broken)
    monkeypatch.setattr(_threads, "_why_not", lambda *args: None)
    monkeypatch.setattr(_threads, "_binding", dict(_threads._binding))
    _threads.bind_workers("tbb")
    assert _threads.binding()["state"] == "failed (OSError: no such thread)"
