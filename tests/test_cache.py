"""The compiled-kernel cache (kernels/_cache.py), in subprocesses with their own cache
folders: warm processes compile nothing and compute bit for bit what uncached ones do; any
edit of the kernels package, or another Numba setting, gives a fresh stamp; variants never
share machine code; corrupt entries, unwritable folders and concurrent writers are harmless."""
import functools
import json
import os
import shutil
import subprocess
import sys

import pytest

import nnjit
from nnjit.kernels import _cache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

REPORT = """
import json as _json
from nnjit.kernels import _cache as _c
print("REPORT", _json.dumps({"stats": _c.STATS, "stamp": _c.stamp() if _c.PRIVATE_API else None,
                             "result": RESULT}))
"""

TRAINING = """
import hashlib
import numpy as np
import nnjit
digest = hashlib.sha256()
for dtype in (np.float32, np.float64):
    np.random.seed(0)
    model = nnjit.Sequential(nnjit.Linear(20, 32, dtype=dtype), nnjit.BatchNormalization(0.9),
                             nnjit.LeakyReLU(), nnjit.Dropout(0.3), nnjit.Linear(32, 5, dtype=dtype),
                             nnjit.LogSoftMax())
    criterion = nnjit.ClassNLLCriterion(log_input=True)
    rng = np.random.default_rng(1)
    state = {}
    config = {"learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    for step in range(3):
        x = rng.standard_normal((48, 20)).astype(dtype)
        y = rng.integers(0, 5, 48)
        model.zeroGradParameters()
        out = model.forward(x)
        digest.update(np.float64(criterion.forward(out, y)).tobytes())
        model.backward(x, criterion.backward(out, y))
        nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), config, state)
        digest.update(out.tobytes())
    for p in model.getParameters():
        for a in (p if isinstance(p, list) else [p]):
            digest.update(a.tobytes())
RESULT = digest.hexdigest()
"""

SOFTMAX = """
import hashlib
import numpy as np
import nnjit
x = np.linspace(-30, 30, 64 * 10).reshape(64, 10)
RESULT = hashlib.sha256(nnjit.SoftMax().forward(x).tobytes()).hexdigest()
"""


def _run(code, cache_dir, cwd=None, extra_env=None, path=None):
    env = dict(os.environ, NNJIT_CACHE_DIR=str(cache_dir), NUMBA_NUM_THREADS="2")
    env.pop("NNJIT_CACHE", None)
    if path:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    env.update(extra_env or {})
    done = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")][-1]
    report = json.loads(line[len("REPORT "):])
    report["stderr"] = done.stderr
    return report


def test_numba_private_api_is_what_the_cache_needs():
    """Fails loudly when a Numba upgrade changes what kernels/_cache.py relies on, instead
    of nnjit silently running uncached."""
    assert _cache.PRIVATE_API, "numba.core.caching changed: update kernels/_cache.py"
    if _cache.enabled():
        for kernel in nnjit.kernels.ALL_KERNELS.values():
            for variant in ("serial", "parallel"):
                dispatcher = getattr(kernel, variant, None)
                if dispatcher is not None:
                    assert isinstance(dispatcher._cache, _cache.NnjitCache), kernel.name


TRAINING_FLOAT32 = TRAINING.replace("(np.float32, np.float64)", "(np.float32,)")


def _run_at_once(code, cache_dir, processes):
    """Reports of `processes` runs of code started together on one cache folder."""
    env = dict(os.environ, NNJIT_CACHE_DIR=str(cache_dir), NUMBA_NUM_THREADS="2")
    env.pop("NNJIT_CACHE", None)
    workers = [subprocess.Popen([sys.executable, "-c", code + REPORT], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
        reports.append(json.loads(out.split("REPORT ", 1)[1]))
    return reports


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache folder filled by three cold runs of TRAINING started at once (concurrent
    writers), with their reports."""
    folder = tmp_path_factory.mktemp("warm-cache")
    return folder, _run_at_once(TRAINING, folder, 3)


def test_three_processes_filling_one_folder_at_once(warm_cache):
    folder, cold = warm_cache
    assert all(report["stats"]["misses"] > 0 for report in cold)
    fourth = _run(TRAINING, folder)
    assert fourth["stats"]["misses"] == 0 and fourth["stats"]["corrupt"] == 0
    assert {report["result"] for report in cold} == {fourth["result"]}


def test_warm_process_compiles_nothing_and_matches_uncached_bit_for_bit(warm_cache, tmp_path):
    folder, [cold, *_] = warm_cache
    warm = _run(TRAINING, folder)
    assert warm["stats"]["misses"] == 0 and warm["stats"]["hits"] > 0, warm["stats"]
    uncached = _run(TRAINING, tmp_path / "unused", extra_env={"NNJIT_CACHE": "0"})
    assert uncached["stats"] == {"hits": 0, "misses": 0, "saves": 0, "corrupt": 0}
    assert not (tmp_path / "unused").exists()
    assert warm["result"] == cold["result"] == uncached["result"]


def test_corrupt_index_and_data_files_are_misses_then_rewritten(warm_cache, tmp_path):
    folder, _ = warm_cache
    reference = _run(TRAINING_FLOAT32, folder)
    copy = tmp_path / "cache"
    shutil.copytree(folder, copy)
    stamp_folder = next(p for p in copy.iterdir() if p.name.startswith(_cache.STAMP_PREFIX))
    files = sorted(stamp_folder.iterdir())
    for index, path in enumerate(f for f in files if f.suffix in (".nbi", ".nbc")):
        data = path.read_bytes()
        if index % 3 == 0:
            path.write_bytes(data[: len(data) // 2])  # truncated
        elif index % 3 == 1:
            path.write_bytes(b"\x80\x04garbage" + bytes(reversed(data[:50])))  # corrupt
    damaged = _run(TRAINING_FLOAT32, copy)
    assert damaged["result"] == reference["result"]
    assert damaged["stats"]["corrupt"] > 0 and damaged["stats"]["saves"] > 0
    again = _run(TRAINING_FLOAT32, copy)
    assert again["stats"]["misses"] == 0 and again["result"] == reference["result"]


def test_unwritable_cache_folder_warns_once_and_runs_uncached(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    report = _run(SOFTMAX, blocker / "cache")
    assert report["stderr"].count("cannot write the kernel cache") == 1
    assert report["stats"]["saves"] == 0 and report["stats"]["misses"] > 0
    reference = _run(SOFTMAX, tmp_path / "good")
    assert report["result"] == reference["result"]


def test_a_numba_setting_gives_another_stamp(tmp_path):
    default = _run(SOFTMAX, tmp_path)
    other = _run(SOFTMAX, tmp_path, extra_env={"NUMBA_OPT": "1"})
    assert other["stamp"] != default["stamp"]
    assert other["stats"]["misses"] > 0
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(_cache.STAMP_PREFIX)]) == 2


THREADS = """
import numpy as np
from numba import get_num_threads, get_thread_id, prange
from nnjit.kernels._jit import kernel

# get_thread_id reads the threading layer, which a serial function loaded from a cache does
# not start (compiling one does): start it first, as a parallel launch would.
assert get_num_threads() == 2

@kernel(parallel_min=1)
def threads_used(out):
    for i in prange(out.shape[0]):
        acc = 0.0
        for j in range(200000):  # ~13 ms a call: time for the second thread to take tasks
            acc += np.sqrt(j + i)
        out[i] = get_thread_id() + 0 * acc

def used(variant):
    # the threads seen over up to 20 calls: on a loaded machine one call may find the other
    # thread busy elsewhere, but parallel code is never confined to one thread 20 times
    seen = set()
    for _ in range(20):
        out = np.full(64, -1.0)
        getattr(threads_used, variant)(out)
        seen |= set(out.astype(int).tolist())
        if len(seen) > 1:
            break
    return sorted(seen)

RESULT = {}
for variant in ORDER:
    RESULT[variant] = used(variant)
"""


def test_serial_and_parallel_variants_never_share_machine_code(tmp_path):
    module_folder = tmp_path / "src"
    module_folder.mkdir()
    for order in (["serial", "parallel"], ["parallel", "serial"], ["serial", "parallel"]):
        report = _run(f"ORDER = {order!r}\n" + THREADS, tmp_path / "cache", cwd=module_folder)
        assert report["result"]["serial"] == [0], report
        assert report["result"]["parallel"] == [0, 1], report
    assert report["stats"]["misses"] == 0  # the last run was warm


def test_editing_the_kernels_package_recompiles(tmp_path):
    """A copy of the package (kernels inside nnjit/, as in the wheel): after a warm run, a
    comment in _vmath.py, a coefficient in _vmath.py and a threshold in _config.py each give
    a fresh stamp and a recompile, and the coefficient changes the result."""
    source = tmp_path / "src"
    shutil.copytree(os.path.join(REPO, "nnjit"), source / "nnjit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(REPO, "kernels"), source / "nnjit" / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    run = functools.partial(_run, cwd=tmp_path, path=source)  # not the repo: -c puts cwd first
    probe = SOFTMAX + "import nnjit.kernels as _k; assert _k.__file__.startswith(%r)\n" % str(source)
    cold = run(probe, cache)
    warm = run(probe, cache)
    assert warm["stats"]["misses"] == 0 and warm["result"] == cold["result"]

    vmath = source / "nnjit" / "kernels" / "_vmath.py"
    text = vmath.read_text()
    vmath.write_text(text + "\n# a comment\n")
    commented = run(probe, cache)
    assert commented["stamp"] != warm["stamp"] and commented["stats"]["misses"] > 0
    assert commented["result"] == cold["result"]

    coefficient = "p = 2.08860621107283687536341e-09"
    assert coefficient in text
    vmath.write_text(text.replace(coefficient, "p = 2.08860621107283687536341e-04"))
    edited = run(probe, cache)
    assert edited["stats"]["misses"] > 0 and edited["result"] != cold["result"]

    config = source / "nnjit" / "kernels" / "_config.py"
    config.write_text(config.read_text().replace("PARALLEL_MIN_EXP = 16384", "PARALLEL_MIN_EXP = 16385"))
    reconfigured = run(probe, cache)
    assert reconfigured["stamp"] != edited["stamp"] and reconfigured["stats"]["misses"] > 0


WORKERS = """
import multiprocessing as mp
import numpy as np

def work(_):
    import nnjit
    from nnjit.kernels import _cache
    x = np.linspace(-3, 3, 640).reshape(64, 10)
    nnjit.SoftMax().forward(x)
    return dict(_cache.STATS)

if __name__ == "__main__":
    for method in ("fork", "spawn"):
        with mp.get_context(method).Pool(1) as pool:
            stats = pool.map(work, [0])[0]
        print(method, stats["hits"], stats["misses"])
"""


def test_fork_and_spawn_workers_use_the_cache(tmp_path):
    _run(SOFTMAX, tmp_path)  # fills the cache
    script = tmp_path / "workers.py"
    script.write_text(WORKERS)
    env = dict(os.environ, NNJIT_CACHE_DIR=str(tmp_path), NUMBA_NUM_THREADS="2")
    env.pop("NNJIT_CACHE", None)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    for method in ("fork", "spawn"):
        hits, misses = map(int, lines[method].split())
        assert hits > 0 and misses == 0, (method, hits, misses)


def test_cache_command_shows_and_clears(tmp_path):
    _run(SOFTMAX, tmp_path)
    env = dict(os.environ, NNJIT_CACHE_DIR=str(tmp_path))
    shown = subprocess.run([sys.executable, "-m", "nnjit", "cache"], capture_output=True,
                           text=True, env=env, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert str(tmp_path) in shown.stdout and "entries" in shown.stdout
    cleared = subprocess.run([sys.executable, "-m", "nnjit", "cache", "--clear"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert cleared.returncode == 0, cleared.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(_cache.STAMP_PREFIX)]


def test_stamp_covers_every_kernels_file():
    names = {relative for relative, _ in _cache._kernel_sources()}
    folder = os.path.dirname(_cache.__file__)
    on_disk = {name for name in os.listdir(folder) if name.endswith(".py")}
    assert on_disk <= names and "_vmath.py" in names and "_config.py" in names


def test_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NNJIT_CACHE_DIR", str(tmp_path / "explicit"))
    assert _cache.base_folder() == str(tmp_path / "explicit")
    monkeypatch.delenv("NNJIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.base_folder() == str(tmp_path / "xdg" / "nnjit")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cache.base_folder() == str(tmp_path / "home" / ".cache" / "nnjit")
    assert not _cache.base_folder().startswith(os.path.dirname(nnjit.__file__))
