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
    # build isolation, as `pip install .` builds: a fresh venv's own setuptools (65 on Python
    # 3.11) lacks bdist_wheel without the wheel package, and that skipped this test in CI
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(tmp_path), ROOT], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {done.stderr[-300:]}")
    (wheel,) = tmp_path.glob("nnjit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nnjit/kernels/softmax.py" in names and "nnjit/kernels/_config.py" in names
    assert not any(name.startswith(("kernels/", "tests/")) for name in names)


def test_version():
    assert nnjit.__version__


def test_nnjit_kernels_imports_from_a_source_checkout_without_an_editable_install(tmp_path):
    """`python -m nnjit ...` started in the repository root after `pip install .` imports
    nnjit/ from the tree; kernels/ beside it must still be nnjit.kernels (the README's quick
    start). The editable install's finder is taken away to stand for a plain install."""
    code = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "import nnjit, nnjit.kernels as K\n"
        "print(nnjit.__file__); print(K.__file__); print(len(K.ALL_KERNELS))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    package, kernels, count = done.stdout.split()
    assert package == os.path.join(ROOT, "nnjit", "__init__.py")
    assert kernels == os.path.join(ROOT, "kernels", "__init__.py") and int(count) > 30
