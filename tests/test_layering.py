"""The math layer does not depend on the API layer: nothing in kernels/ imports nnjit, and
the kernels package works on its own, backend switch included."""
import ast
import os
import subprocess
import sys

import nnjit
from conftest import import_blocker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "kernels")


def _imported_modules(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_no_kernels_file_imports_nnjit():
    offenders = []
    for name in sorted(os.listdir(KERNELS)):
        if name.endswith(".py"):
            offenders += [f"{name}: {module}" for module in _imported_modules(os.path.join(KERNELS, name))
                          if module == "nnjit" or module.startswith("nnjit.")]
    assert not offenders, offenders


STANDALONE = import_blocker("nnjit") + """
sys.path.insert(0, sys.argv[1])
import numpy as np
import kernels
x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])
results = {}
for path in kernels.BACKENDS:
    with kernels.backend(path):
        assert kernels.get_backend() == path
        out = np.empty_like(x)
        kernels.softmax_update_output(x, out)
        results[path] = out
np.testing.assert_allclose(results["numba"], results["numpy"], rtol=1e-12)
kernels.set_backend("numpy")
assert kernels.get_backend() == "numpy"
assert not [m for m in sys.modules if m == "nnjit" or m.startswith("nnjit.")]
print("ok", kernels.__file__)
"""


def test_kernels_package_imports_and_runs_without_nnjit(tmp_path):
    done = subprocess.run([sys.executable, "-c", STANDALONE, ROOT], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok") and KERNELS in done.stdout


def test_nnjit_reexports_the_backend_switch_of_the_kernels():
    from nnjit import kernels
    for name in ("BACKENDS", "backend", "get_backend", "set_backend"):
        assert getattr(nnjit, name) is getattr(kernels, name)
