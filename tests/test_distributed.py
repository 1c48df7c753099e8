"""Data-parallel training (nnjit.distributed): N ranks equal one process, failures end the job.

The MPI tests start mpiexec as a subprocess with a timeout, and are skipped only where
mpiexec or mpi4py is missing (CI installs both: pip install '.[mpi]')."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import nnjit
from nnjit import distributed
from nnjit.kernels import shifted_seed

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = os.path.join(HERE, "mpi_programs.py")


def _mpiexec():
    found = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                         + os.environ.get("PATH", ""))
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    return found


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec or mpi4py is not installed")


def _open_mpi():
    done = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True, timeout=60)
    return "open mpi" in (done.stdout + done.stderr).lower()


def mpirun(ranks, *args, timeout=240, program=PROGRAMS):
    """mpiexec -n ranks python -m mpi4py [program] ARGS: by default a program of
    mpi_programs.py; program=None for ARGS such as ``-m nnjit ...`` or a script."""
    command = [MPIEXEC, "-n", str(ranks)]
    env = dict(os.environ)
    if _open_mpi():  # as root, and more ranks than cores (CI has 2)
        command.append("--oversubscribe")
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command += [sys.executable, "-m", "mpi4py"] + ([program] if program else []) + list(args)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def single(*args, timeout=240):
    return subprocess.run([sys.executable, PROGRAMS] + list(args), capture_output=True,
                          text=True, timeout=timeout)


def _ok(done):
    assert done.returncode == 0, done.stdout + done.stderr
    return done


# no MPI needed ---------------------------------------------------------------------------

@pytest.mark.parametrize("n_rows", [0, 1, 2, 7, 64, 1001])
@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_shards_are_contiguous_cover_the_batch_and_differ_by_at_most_one(n_rows, size):
    ranges = [distributed.shard_range(n_rows, size, rank) for rank in range(size)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n_rows
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [stop - start for start, stop in ranges]
    assert max(sizes) - min(sizes) <= 1 and sorted(sizes, reverse=True) == sizes


def test_shard_range_refuses_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank 3"):
        distributed.shard_range(10, 3, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_shard_drops_exactly_the_elements_one_process_drops_there(dtype):
    x = np.random.default_rng(0).standard_normal((10, 3, 7)).astype(dtype)
    whole = nnjit.Dropout(0.5, seed=9)
    expected = whole.forward(x).copy()
    grad = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    expected_grad = whole.backward(x, grad).copy()
    for start, stop in [(0, 4), (4, 7), (7, 10), (3, 3)]:
        part = nnjit.Dropout(0.5, seed=9)
        part._shard = distributed.Shard(None, start, stop, 10)
        np.testing.assert_array_equal(part.forward(x[start:stop]), expected[start:stop])
        np.testing.assert_array_equal(part.backward(x[start:stop], grad[start:stop]),
                                      expected_grad[start:stop])
        np.testing.assert_array_equal(part.mask, whole.mask[start:stop])


def test_shifted_seed_composes_and_wraps_around_64_bits():
    seed = np.uint64(2**64 - 5)
    assert shifted_seed(seed, 0) == seed
    assert shifted_seed(shifted_seed(seed, 10**12), 7) == shifted_seed(seed, 10**12 + 7)
    assert shifted_seed(0, 2**63) == np.uint64(2**63)  # the golden constant is odd
    assert isinstance(shifted_seed(seed, 2**70), np.uint64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_synchronized_batch_norm_on_one_rank_equals_the_plain_layer(dtype):
    """The synchronized path (statistics, normalize, gradient sums, apply) against the fused
    single-process kernels, in training, on both backends."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((70, 9)) * 3 + 5).astype(dtype)
    g = rng.standard_normal((70, 9)).astype(dtype)
    for backend in nnjit.BACKENDS:
        with nnjit.backend(backend):
            plain, synced = nnjit.BatchNormalization(0.7), nnjit.BatchNormalization(0.7, sync=True)
            synced._shard = distributed.Shard(distributed.SelfComm(), 0, 70, 70)
            for _ in range(2):
                out_plain, out_synced = plain.forward(x), synced.forward(x)
                grad_plain, grad_synced = plain.backward(x, g), synced.backward(x, g)
            tol = dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(out_synced, out_plain, **tol)
            np.testing.assert_allclose(grad_synced, grad_plain, **tol)
            np.testing.assert_allclose(synced.moving_mean, plain.moving_mean, **tol)
            np.testing.assert_allclose(synced.moving_variance, plain.moving_variance, **tol)


def test_without_a_shard_sync_changes_nothing_and_empty_batches_are_still_refused():
    x = np.random.default_rng(4).standard_normal((8, 3))
    a, b = nnjit.BatchNormalization(), nnjit.BatchNormalization(sync=True)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    assert repr(b) == "BatchNormalization(alpha=0, sync=True)"
    with pytest.raises(ValueError, match="empty batch"):
        b.forward(np.zeros((0, 3)))
    with pytest.raises(TypeError, match="sync"):
        nnjit.BatchNormalization(sync="yes")


def test_an_empty_shard_passes_through_unsynchronized_batch_norm_untouched():
    layer = nnjit.BatchNormalization(0.5)
    layer.forward(np.random.default_rng(5).standard_normal((6, 4)))
    before = layer.moving_mean.copy(), layer.moving_variance.copy()
    layer._shard = distributed.Shard(None, 6, 6, 6)
    empty = np.zeros((0, 4))
    assert layer.forward(empty).shape == (0, 4)
    assert layer.backward(empty, empty).shape == (0, 4)
    np.testing.assert_array_equal(layer.moving_mean, before[0])
    np.testing.assert_array_equal(layer.moving_variance, before[1])


def test_a_copy_keeps_the_shard_and_a_pickle_drops_it():
    import copy
    import pickle
    layer = nnjit.Dropout(0.5)
    layer._shard = distributed.Shard(object(), 0, 1, 2)
    assert copy.deepcopy(layer)._shard is layer._shard
    assert pickle.loads(pickle.dumps(layer))._shard is None


@pytest.mark.parametrize("env, expected", [
    ({}, "1 [1]"),                                   # one of each by default
    ({"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}, "2 [2]"),  # the environment wins
])
def test_rank_threads_default_to_one_unless_the_environment_says_otherwise(env, expected):
    pytest.importorskip("threadpoolctl")
    script = ("import numba\nfrom nnjit import distributed\n"
              "blas = distributed.set_rank_threads()\nprint(numba.get_num_threads(), blas)")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("NUMBA_NUM_THREADS",) + distributed.THREAD_VARIABLES}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**clean, **env})
    assert done.stdout.strip() == expected, done.stdout + done.stderr


def test_without_mpi4py_the_error_says_what_to_install():
    from conftest import import_blocker
    script = import_blocker("mpi4py") + """
from nnjit import distributed
try:
    distributed.world()
except ImportError as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert "pip install 'nnjit[mpi]'" in done.stdout, done.stdout + done.stderr


def test_without_an_mpi_library_the_error_says_what_to_install():
    """mpi4py's wheel raises RuntimeError when it finds no libmpi: nnjit says what to do."""
    script = """
import importlib.abc, importlib.machinery, sys

class NoLibrary(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "mpi4py.MPI":
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        raise RuntimeError("cannot load MPI library\\nlibmpi.so: cannot open shared object file")
    def exec_module(self, module):
        pass

sys.meta_path.insert(0, NoLibrary())
from nnjit import distributed
try:
    distributed.world()
except ImportError as exc:
    print(exc)
"""
    pytest.importorskip("mpi4py")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert "found no MPI library (cannot load MPI library)" in done.stdout, done.stdout + done.stderr
    assert "pip install 'nnjit[mpi]'" in done.stdout


# under mpiexec ---------------------------------------------------------------------------

@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_the_api_keeps_its_promises(ranks):
    done = _ok(mpirun(ranks, "api"))
    assert done.stdout.count("OK ") == 8, done.stdout


TRAIN = ["--epochs", "2", "--hidden", "24", "--seed", "5"]
CASES = {
    # 1438 samples: the last of 3 batches of 479 has one row, fewer than the ranks
    "dropout, sync batchnorm, last batch of one row": ["--batch-size", "479", "--dropout", "0.3",
                                                       "--sync-batchnorm"],
    "uneven shards of 50": ["--batch-size", "50", "--dropout", "0.5"],
    "a CNN with dropout": ["--model", "cnn", "--channels", "4", "8", "--batch-size", "100",
                           "--dropout", "0.3", "--epochs", "1"],
    # a batch of 2 on 3 ranks: one empty shard in every step
    "float64, empty shards": ["--batch-size", "2", "--dtype", "float64", "--dropout", "0.3",
                              "--sync-batchnorm", "--epochs", "1"],
}


@needs_mpi
@pytest.mark.parametrize("ranks, case", [(ranks, case) for case in sorted(CASES)
                                         for ranks in (2, 3) if ranks == 3 or "uneven" in case
                                         or "last batch" in case])
def test_ranks_train_exactly_as_one_process(tmp_path, ranks, case):
    args = TRAIN + CASES[case]
    _ok(single("history", str(tmp_path / "one.json"), *args))
    _ok(mpirun(ranks, "history", str(tmp_path / "many.json"), "--distributed", *args))
    one = json.loads((tmp_path / "one.json").read_text())
    many = json.loads((tmp_path / "many.json").read_text())
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose(many[key], one[key], rtol=1e-5, err_msg=key)
    for key in ("train_accuracy", "val_accuracy"):
        np.testing.assert_allclose(many[key], one[key], atol=1.5 / 359, err_msg=key)


@needs_mpi
def test_the_command_line_prints_and_saves_on_rank_zero_only(tmp_path):
    saved = tmp_path / "model.npz"
    args = ["train", "--distributed", "--epochs", "2", "--hidden", "32", "--sync-batchnorm",
            "--dropout", "0.2", "--batch-size", "64", "--save", str(saved)]
    done = _ok(mpirun(2, "-m", "nnjit", *args, program=None))
    assert done.stdout.count("final validation accuracy") == 1, done.stdout
    assert "distributed: 2 ranks, each with 1 numba and 1 BLAS threads" in done.stdout
    assert saved.exists()
    # the saved model loads in one process and validates as the ranks did
    final = done.stdout.split("final validation accuracy: ")[1].split()[0]
    again = subprocess.run([sys.executable, "-m", "nnjit", "train", "--epochs", "0", "--hidden",
                            "32", "--sync-batchnorm", "--dropout", "0.2", "--load", str(saved)],
                           capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    assert f"final validation accuracy: {final}" in again.stdout, (done.stdout, again.stdout)
    # and predicts the same in a program of its own
    _ok(single("predict", str(saved), str(tmp_path / "a.npy")))
    _ok(mpirun(2, "predict", str(saved), str(tmp_path / "b.npy")))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


@needs_mpi
def test_the_example_prints_the_same_losses_on_one_process_and_three_ranks():
    example = os.path.join(os.path.dirname(HERE), "examples", "distributed.py")
    one = subprocess.run([sys.executable, example], capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stderr
    three = _ok(mpirun(3, example, program=None))

    def epochs(text):
        return [line.rsplit("(", 1)[0] for line in text.splitlines() if line.startswith("epoch")]
    assert len(epochs(one.stdout)) == 3 and epochs(three.stdout) == epochs(one.stdout), \
        (one.stdout, three.stdout)


def _ends_quickly(done, began):
    assert done.returncode != 0
    assert time.perf_counter() - began < 60, "the job outlived its failed rank"


@needs_mpi
def test_an_exception_in_one_rank_ends_the_job_with_its_message():
    began = time.perf_counter()
    done = mpirun(2, "fail", "raise", timeout=120)
    _ends_quickly(done, began)
    assert "rank one gives up here" in done.stderr


@needs_mpi
def test_a_killed_rank_ends_the_job():
    began = time.perf_counter()
    done = mpirun(2, "fail", "kill", timeout=120)
    _ends_quickly(done, began)


@needs_mpi
def test_a_failure_on_rank_zero_alone_ends_the_command_even_without_mpi4py_run(tmp_path):
    """Only rank 0 checks --save's folder; its error must not leave rank 1 waiting, even when
    the job was not started through ``python -m mpi4py``."""
    command = [MPIEXEC, "-n", "2"]
    env = dict(os.environ)
    if _open_mpi():
        command.append("--oversubscribe")
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command += [sys.executable, "-m", "nnjit", "train", "--distributed", "--epochs", "1",
                "--save", str(tmp_path / "missing" / "model.npz")]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    _ends_quickly(done, began)
    assert "rank 0: python -m nnjit train: --save" in done.stderr, done.stderr
