"""Property-based tests (hypothesis): for random shapes, dtypes and values, the numba path of
every module equals the numpy path, and float64 input gradients match central differences."""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import nnjit  # noqa: E402
from conftest import numeric_gradient, tolerance  # noqa: E402

LAYERS = {
    "Linear": lambda c, dtype: nnjit.Linear(c, 3, dtype=dtype),
    "SoftMax": lambda c, dtype: nnjit.SoftMax(),
    "LogSoftMax": lambda c, dtype: nnjit.LogSoftMax(),
    "BatchNormalization": lambda c, dtype: nnjit.BatchNormalization(0.5),
    "ChannelwiseScaling": lambda c, dtype: nnjit.ChannelwiseScaling(c, dtype=dtype),
    "Dropout": lambda c, dtype: nnjit.Dropout(0.3, seed=5),
    "ReLU": lambda c, dtype: nnjit.ReLU(),
    "LeakyReLU": lambda c, dtype: nnjit.LeakyReLU(0.1),
    "ELU": lambda c, dtype: nnjit.ELU(0.8),
    "SoftPlus": lambda c, dtype: nnjit.SoftPlus(),
}
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


@st.composite
def batches(draw, max_rows=40, max_columns=40, elements=None):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = (draw(st.integers(1, max_rows)), draw(st.integers(1, max_columns)))
    values = elements or st.floats(-60, 60, allow_nan=False, width=32)
    return draw(hnp.arrays(dtype, shape, elements=values))


def _run(name, x, backend):
    module = LAYERS[name](x.shape[1], x.dtype)
    with nnjit.backend(backend):
        if hasattr(module, "W"):  # the same weights on both paths
            module.W = np.linspace(-1, 1, module.W.size).reshape(module.W.shape)
            module.b = np.linspace(-0.5, 0.5, module.b.size)
        if hasattr(module, "gamma"):
            module.gamma = np.linspace(0.5, 1.5, module.gamma.size)
            module.beta = np.linspace(-0.5, 0.5, module.beta.size)
        out = module.forward(x).copy()
        grad = module.backward(x, np.cos(np.arange(out.size)).reshape(out.shape).astype(x.dtype))
    return out, grad.copy()


@pytest.mark.parametrize("name", sorted(LAYERS))
@SETTINGS
@given(x=batches())
def test_numba_path_equals_numpy_path(name, x):
    if name == "BatchNormalization" and x.shape[0] < 2:
        return  # one sample has no spread to normalize by (both paths agree, on 0)
    numba_out, numba_grad = _run(name, x, "numba")
    numpy_out, numpy_grad = _run(name, x, "numpy")
    tol = tolerance(x.dtype)
    scale = max(1.0, float(np.abs(numpy_out).max(initial=0)))
    np.testing.assert_allclose(numba_out, numpy_out, rtol=tol["rtol"], atol=tol["atol"] * scale)
    scale = max(1.0, float(np.abs(numpy_grad).max(initial=0)))
    if name == "BatchNormalization" and x.dtype == np.float32:
        scale *= 10  # the normalized gradient amplifies rounding by 1/std
    np.testing.assert_allclose(numba_grad, numpy_grad, rtol=tol["rtol"] * 10,
                               atol=tol["atol"] * scale)


@st.composite
def small_float64_batches(draw):
    shape = (draw(st.integers(2, 6)), draw(st.integers(1, 6)))
    x = draw(hnp.arrays(np.float64, shape, elements=st.floats(-4, 4, allow_nan=False)))
    return np.where(np.abs(x) < 0.05, 0.3, x)  # off the kinks of ReLU-like functions


@pytest.mark.parametrize("name", sorted(set(LAYERS) - {"Dropout"}))
@SETTINGS
@given(x=small_float64_batches())
def test_input_gradient_matches_central_differences(name, x):
    if name == "BatchNormalization" and np.ptp(x, axis=0).min() < 0.1:
        return  # near-constant columns: the normalization is ill-conditioned
    module = LAYERS[name](x.shape[1], np.float64)
    weights = np.cos(np.arange(100.0))

    def loss():
        out = module.forward(x)
        return float((out * weights[:out.size].reshape(out.shape)).sum())

    out = module.forward(x)
    analytic = module.backward(x, weights[:out.size].reshape(out.shape)).copy()
    numeric = numeric_gradient(loss, x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)
