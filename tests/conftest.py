import numpy as np
import pytest

DTYPES = [np.float32, np.float64]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def tolerance(dtype):
    """rtol/atol for comparing two correct computations that differ in rounding order."""
    return dict(rtol=3e-5, atol=3e-6) if np.dtype(dtype) == np.float32 else dict(rtol=1e-11, atol=1e-12)


def numeric_gradient(f, x, h=1e-6):
    """Central differences of the scalar function f at x (float64), one element at a time."""
    grad = np.zeros_like(x)
    flat, grad_flat = x.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        original = flat[k]
        flat[k] = original + h
        plus = f()
        flat[k] = original - h
        minus = f()
        flat[k] = original
        grad_flat[k] = (plus - minus) / (2 * h)
    return grad


def import_blocker(package):
    """Source of a prelude for scripts run in a fresh interpreter: importing ``package`` (or
    any submodule) fails there, as on a machine without it."""
    return f"""
import importlib.abc, sys

class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == {package!r} or name.startswith({package + "."!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None

sys.meta_path.insert(0, _Blocker())
"""


def flat_arrays(nested):
    """The arrays of getParameters()/getGradParameters() output (a Sequential nests lists)."""
    for item in nested:
        if isinstance(item, list):
            yield from flat_arrays(item)
        else:
            yield item
