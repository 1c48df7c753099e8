"""``python -m nnjit bench`` prints its table and saves JSON (timings are not asserted)."""
import json
import subprocess
import sys

import numba
import pytest

from conftest import import_blocker
from nnjit import bench


def test_bench_rows_and_json(tmp_path, capsys):
    threads = numba.get_num_threads()
    out = tmp_path / "bench.json"
    bench.main(["--ops", "softmax_fwd", "leaky_relu_fwd", "--shapes", "8x5", "33x7",
                "--threads", "1", "--json", str(out)])
    printed = capsys.readouterr()
    rows = json.loads(out.read_text())
    assert [(r["op"], r["shape"]) for r in rows] == [
        ("softmax_fwd", [8, 5]), ("softmax_fwd", [33, 7]),
        ("leaky_relu_fwd", [8, 5]), ("leaky_relu_fwd", [33, 7])]
    for row in rows:
        assert row["numba_s"] > 0 and row["numpy_s"] > 0 and row["threads"] == 1
        assert row["numpy/numba"] == pytest.approx(row["numpy_s"] / row["numba_s"])
    assert "numpy/numba" in printed.out and "33x7" in printed.out and "[4/4]" in printed.err
    assert numba.get_num_threads() == threads  # restored


def test_bench_repeat_takes_medians_over_sweeps(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["--ops", "relu_fwd", "--shapes", "8x5", "--threads", "1", "--repeat", "3",
                "--json", str(out)])
    printed = capsys.readouterr()
    (row,) = json.loads(out.read_text())
    assert row["repeat"] == 3 and row["numba_s"] > 0 and row["copy_s"] > 0
    assert row["copy/numba"] == pytest.approx(row["copy_s"] / row["numba_s"])
    assert "over 3 sweeps" in printed.out and "[3/3]" in printed.err
    with pytest.raises(SystemExit):
        bench.main(["--ops", "relu_fwd", "--repeat", "0"])


def test_bench_refuses_bad_arguments():
    with pytest.raises(SystemExit, match="unknown ops"):
        bench.main(["--ops", "no_such_op", "--shapes", "2x2"])
    done = subprocess.run([sys.executable, "-m", "nnjit", "bench", "--shapes", "12"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "shape must look like 256x1000" in done.stderr
    done = subprocess.run([sys.executable, "-m", "nnjit"], capture_output=True, text=True)
    assert done.returncode != 0 and "usage: python -m nnjit" in done.stderr


# The image ops at small shapes, as many per op as the defaults (both convolution paths).
SMALL_IMAGES = {"conv2d_fwd": [(2, 1, 6, 6), (2, 4, 5, 5)], "conv2d_bwd": [(2, 1, 6, 6), (2, 4, 5, 5)],
                "max_pool2d_fwd": [(2, 3, 6, 6)], "max_pool2d_bwd": [(2, 3, 6, 6)]}


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bench_runs_every_op(dtype):
    """Every op of the table runs on all paths (torch too, where installed)."""
    torch_installed = bench._torch() is not None
    rows = bench.run(shapes=[(5, 7)], dtype=dtype, threads=1, progress=False, min_time=0.0,
                     image_shapes=SMALL_IMAGES)
    assert len(rows) == len(bench._ops(bench._torch())) + 2 >= 32
    for row in rows:
        assert row["dtype"] == dtype and row["numba_s"] > 0 and row["numpy_s"] > 0
        assert (row["torch_s"] is not None) == torch_installed, row["op"]


# Runs in a fresh interpreter in which importing torch fails, as on a machine without it.
_WITHOUT_TORCH = import_blocker("torch") + r'''
import pkgutil
import nnjit
for module in pkgutil.walk_packages(nnjit.__path__, "nnjit."):
    __import__(module.name)
from nnjit import bench
assert bench._torch() is None
rows = bench.run(shapes=[(5, 7)], dtype=sys.argv[1], threads=1, progress=False, min_time=0.0,
                 image_shapes={name: [(2, 1, 6, 6)] for name in bench.IMAGE_SHAPES})
assert len(rows) == len(bench._ops(None)) >= 32
for row in rows:
    assert row["numba_s"] > 0 and row["numpy_s"] > 0 and row["torch_s"] is None, row
bench.main(["--ops", "softmax_fwd", "cross_entropy_bwd", "--shapes", "5x7", "--threads", "1"])
assert not [name for name in sys.modules if name == "torch" or name.startswith("torch.")]
'''


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bench_without_torch(dtype):
    """Where torch cannot be imported, every op runs on the numba and numpy paths, the torch
    column shows '-' with one line on how to add it, and no module of nnjit imports torch."""
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, dtype], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    table = [line.split() for line in done.stdout.splitlines()
             if line.startswith(("softmax_fwd", "cross_entropy_bwd"))]
    assert [row[0] for row in table] == ["softmax_fwd", "cross_entropy_bwd"]
    assert all(row[4] == "-" and row[6] == "-" for row in table), done.stdout
    assert bench.NO_TORCH_HINT in done.stdout
