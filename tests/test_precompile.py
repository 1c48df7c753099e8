"""``python -m nnjit compile``: the cache it fills, in one process and in several, and its
refusals. A small plan stands in for the whole layer API (which takes minutes to compile)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nnjit
from nnjit import precompile

TESTS = os.path.dirname(os.path.abspath(__file__))


def small_plan(dtype):
    """One item per dtype, as precompile.plan yields them (workers import this function by
    name): two items in all, one for each of two processes."""
    yield ("LeakyReLU, cross-entropy",
           nnjit.Sequential(nnjit.Linear(3, 2, dtype=dtype), nnjit.LeakyReLU()),
           nnjit.CrossEntropyCriterion(), np.array([1, 0]), (2, 3))


def dying_plan(dtype):
    """small_plan, but building the float64 item kills a worker process outright, as an LLVM
    assertion would (the parent, which only counts the items, is spared)."""
    import multiprocessing
    if dtype == np.float64 and multiprocessing.parent_process() is not None:
        os.abort()
    yield from small_plan(dtype)


_FILL = """
import sys
sys.path.insert(0, {tests!r})
from nnjit import precompile
from test_precompile import small_plan, dying_plan
if __name__ == "__main__":
    plan = dying_plan if sys.argv[2:] == ["dying"] else small_plan
    saves, hits = precompile.fill(plan, jobs=int(sys.argv[1]))
    print("saves", saves, "hits", hits)
"""


def _fill(folder, jobs):
    done = subprocess.run([sys.executable, "-c", _FILL.format(tests=TESTS), str(jobs)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, NNJIT_CACHE_DIR=str(folder)))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    saves, hits = lines[-1].split()[1::2]
    return int(saves), int(hits), lines[:-1]


def test_a_worker_killed_outright_ends_the_command_with_an_error_not_a_hang(tmp_path):
    done = subprocess.run([sys.executable, "-c", _FILL.format(tests=TESTS), "2", "dying"],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, NNJIT_CACHE_DIR=str(tmp_path)))
    assert done.returncode == 1, done.stderr
    assert "a compiling process died" in done.stderr and "--jobs 1" in done.stderr


def _index_files(folder):
    return sorted(name for _, _, names in os.walk(folder) for name in names if name.endswith(".nbi"))


def test_two_processes_fill_the_cache_one_would_and_the_next_run_is_warm(tmp_path):
    saves, hits, lines = _fill(tmp_path / "two", 2)
    assert saves > 0
    assert sorted(line.split()[0] for line in lines) == ["float32", "float64"]
    one_saves, _, _ = _fill(tmp_path / "one", 1)
    assert _index_files(tmp_path / "two") == _index_files(tmp_path / "one")
    # two processes may both compile a kernel they reach at the same moment, never fewer
    assert saves >= one_saves
    again_saves, again_hits, _ = _fill(tmp_path / "two", 2)
    assert again_saves == 0 and again_hits > 0


@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_jobs_must_be_a_positive_whole_number(jobs, capsys):
    with pytest.raises(SystemExit):
        precompile.main(["--jobs", jobs])
    assert "--jobs takes a whole number of processes" in capsys.readouterr().err


def test_refuses_when_the_cache_is_off():
    done = subprocess.run([sys.executable, "-m", "nnjit", "compile", "--jobs", "1"],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, NNJIT_CACHE="0"))
    assert done.returncode != 0 and "the kernel cache is off" in done.stderr
