"""The vectorizable exp, expm1, log1p and row maximum of kernels/_vmath.py, against a
higher-precision reference over their whole range, and at the edges (subnormal results,
overflow, +-inf, NaN)."""
import numba
import numpy as np
import pytest

from nnjit.kernels import _vmath
from nnjit.kernels._config import FASTMATH

_jit = numba.njit(fastmath=FASTMATH, error_model="numpy")


@_jit
def _map_exp(x, out):
    for k in range(x.size):
        out[k] = _vmath.vexp(x[k])


@_jit
def _map_expm1(x, out):
    for k in range(x.size):
        out[k] = _vmath.vexpm1(x[k])


@_jit
def _map_log1p_unit(x, out):
    for k in range(x.size):
        out[k] = _vmath.vlog1p_unit(x[k])


@_jit
def _row_maxima(x, out):
    for i in range(x.shape[0]):
        out[i] = _vmath.row_max(x, i)


def _ulp_error(result, reference, dtype):
    """|result - reference| in units of the last place of the reference rounded to dtype,
    where the reference is a normal number of dtype."""
    reference = reference.astype(np.longdouble)
    normal = np.abs(reference) >= np.finfo(dtype).tiny
    spacing = np.spacing(np.abs(reference[normal]).astype(dtype)).astype(np.longdouble)
    return np.abs(result[normal].astype(np.longdouble) - reference[normal]) / spacing


def _apply(kernel, x):
    out = np.empty_like(x)
    kernel(x, out)
    return out


# Where each function's result is a finite normal number.
RANGES = {np.float32: (-87.3, 88.7), np.float64: (-708.3, 709.7)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_within_one_ulp_over_the_whole_range(dtype):
    low, high = RANGES[dtype]
    x = np.concatenate([np.linspace(low, high, 400_001), np.linspace(-1, 1, 100_001),
                        np.random.default_rng(0).uniform(low, high, 100_000)]).astype(dtype)
    errors = _ulp_error(_apply(_map_exp, x), np.exp(x.astype(np.longdouble)), dtype)
    assert errors.max() < 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_edges(dtype):
    info = np.finfo(dtype)
    low, high = RANGES[dtype]
    x = np.array([-np.inf, np.inf, np.nan, 0.0, -0.0, 1.0, low - 10, low - 15, high + 0.05,
                  high + 1, np.log(info.max) * 0.999, -1e4, 1e4], dtype)
    result = _apply(_map_exp, x)
    with np.errstate(over="ignore"):  # exp(1e4) overflows the cast to dtype: inf expected
        expected = np.exp(x.astype(np.longdouble)).astype(dtype)
    assert np.array_equal(np.isnan(result), np.isnan(expected))
    assert np.array_equal(np.isinf(result), np.isinf(expected))
    assert result[0] == 0 and result[1] == np.inf and result[3] == 1 and result[4] == 1
    # subnormal results: no flush to zero, within a few subnormal steps
    subnormal = (x > low - 20) & (x < low)
    assert np.all(result[subnormal] > 0)
    assert np.allclose(result[subnormal], expected[subnormal], rtol=0, atol=4 * info.smallest_subnormal)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_expm1_accurate_near_zero_and_elsewhere(dtype):
    low = RANGES[dtype][0]
    magnitudes = np.geomspace(1e-30, -low, 300_000)
    # ELU's side (x <= 0) within 2 ulp; x > ln2/2 goes through exp(x) - 1, within 3.5 ulp
    for x, bound in [(np.append(-magnitudes, 0.0), 2.0), (magnitudes[magnitudes < 80], 3.5)]:
        x = x.astype(dtype)
        errors = _ulp_error(_apply(_map_expm1, x), np.expm1(x.astype(np.longdouble)), dtype)
        assert errors.max() < bound
    edges = _apply(_map_expm1, np.array([-np.inf, np.nan, -1e4], dtype))
    assert edges[0] == -1 and np.isnan(edges[1]) and edges[2] == -1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log1p_unit_interval(dtype):
    y = np.concatenate([np.geomspace(np.finfo(dtype).tiny, 1, 300_000), [0.0, 1.0]]).astype(dtype)
    errors = _ulp_error(_apply(_map_log1p_unit, y), np.log1p(y.astype(np.longdouble)), dtype)
    assert errors.max() < 2.0
    assert _apply(_map_log1p_unit, np.zeros(1, dtype))[0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("columns", [1, 7, 8, 9, 16, 1000])
def test_row_max(dtype, columns):
    x = np.random.default_rng(columns).standard_normal((5, columns)).astype(dtype)
    x[1, -1] = 50  # the maximum in the tail after the eight-wide blocks
    x[2, :] = -np.inf
    x[3, 0] = np.nan  # ignored: the NaN reaches softmax's result through exp instead
    x[4, :] = np.nan
    out = np.empty(5, dtype)
    _row_maxima(x, out)
    assert out[0] == x[0].max() and out[1] == 50 and out[2] == -np.inf
    assert out[3] == (np.nanmax(x[3]) if columns > 1 else -np.inf) and out[4] == -np.inf
