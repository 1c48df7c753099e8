"""The kernels folder ships as nnjit.kernels, in the installed package and in the wheel."""
import os
import subprocess
import sys
import zipfile

import pytest

import nnjit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_nnjit_kernels_imports_from_the_installed_package(tmp_path):
    code = "import nnjit.kernels as K; print(K.__file__); print(len(K.ALL_KERNELS))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    path, count = done.stdout.split()
    assert os.path.basename(os.path.dirname(path)) == "kernels" and int(count) > 30
    with pytest.raises(ImportError):
        __import__("kernels.softmax")  # no top-level "kernels" package


def test_wheel_maps_kernels_to_nnjit_kernels(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp_path), ROOT],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {done.stderr[-300:]}")
    (wheel,) = tmp_path.glob("nnjit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nnjit/kernels/softmax.py" in names and "nnjit/kernels/_config.py" in names
    assert not any(name.startswith(("kernels/", "tests/")) for name in names)


def test_version():
    assert nnjit.__version__
