"""``python -m nnjit bench`` prints its table and saves JSON (timings are not asserted)."""
import json
import subprocess
import sys

import numba
import pytest

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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bench_runs_every_op(dtype):
    """Every op of the table runs on all paths (torch too, where installed)."""
    torch_installed = bench._torch() is not None
    rows = bench.run(shapes=[(5, 7)], dtype=dtype, threads=1, progress=False, min_time=0.0)
    assert len(rows) == len(bench._ops(bench._torch())) >= 28
    for row in rows:
        assert row["dtype"] == dtype and row["numba_s"] > 0 and row["numpy_s"] > 0
        assert (row["torch_s"] is not None) == torch_installed, row["op"]
