"""The vectorizable exp, expm1, log, log1p and row maximum of kernels/_vmath.py, against a
higher-precision reference over their whole range, and at the edges (subnormal results,
overflow, +-inf, NaN)."""
import numba
import numpy as np
import pytest

from nnjit.kernels import _vmath
from nnjit.kernels._config import FASTMATH

_jit = numba.njit(fastmath=FASTMATH, error_model="numpy")


def _elementwise(function):
    """A jitted loop writing function(x[k]) to out[k], compiled with the kernels' flags."""
    @_jit
    def apply(x, out):
        for k in range(x.size):
            out[k] = function(x[k])
    return apply


_map_exp = _elementwise(_vmath.vexp)
_map_exp_nonpositive = _elementwise(_vmath.vexp_nonpositive)
_map_expm1_wide = _elementwise(_vmath.vexpm1_wide)
_map_expm1 = _elementwise(_vmath.vexpm1)
_map_log1p_unit = _elementwise(_vmath.vlog1p_unit)
_map_log = _elementwise(_vmath.vlog)
_map_log_normal = _elementwise(_vmath.vlog_normal)


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


def _apply_to_float64(kernel, x):
    out = np.empty(x.shape, np.float64)
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
def test_exp_nonpositive_within_one_ulp_and_at_its_edges(dtype):
    low = RANGES[dtype][0]
    x = np.concatenate([np.linspace(low, 0, 400_001), np.linspace(-1, 0, 100_001),
                        np.random.default_rng(1).uniform(low, 0, 100_000),
                        np.linspace(0, 43, 10_001)]).astype(dtype)
    errors = _ulp_error(_apply(_map_exp_nonpositive, x), np.exp(x.astype(np.longdouble)), dtype)
    assert errors.max() < 1.0
    info = np.finfo(dtype)
    edges = np.array([-np.inf, np.nan, 0.0, -0.0, -1e4, 50.0, np.inf], dtype)
    result = _apply(_map_exp_nonpositive, edges)
    assert result[0] == 0 and np.isnan(result[1]) and result[2] == 1 and result[3] == 1
    assert result[4] == 0
    # past its domain it saturates at exp(43) instead of returning garbage bits
    assert result[5] == result[6] == _apply(_map_exp_nonpositive, np.array([43.0], dtype))[0]
    # subnormal results, and the last ones before 0, rounded as exp's
    x = np.linspace(low - 20, low, 50_001).astype(dtype)
    result = _apply(_map_exp_nonpositive, x)
    expected = np.exp(x.astype(np.longdouble)).astype(dtype)
    assert np.allclose(result, expected, rtol=0, atol=info.smallest_subnormal)
    assert np.array_equal(result == 0, expected == 0)
    assert np.array_equal(_apply(_map_exp_nonpositive, x), _apply(_map_exp, x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_expm1_wide_on_elus_side(dtype):
    """float64 results that round to x's dtype within half an ulp plus a hair (ELU rounds
    them once)."""
    low = RANGES[dtype][0]
    x = np.append(-np.geomspace(1e-30, -low, 300_000), [0.0, -0.0]).astype(dtype)
    wide = _apply_to_float64(_map_expm1_wide, x)
    errors = _ulp_error(wide, np.expm1(x.astype(np.longdouble)), dtype)
    assert errors.max() < (0.51 if dtype == np.float32 else 1.0)
    edges = _apply_to_float64(_map_expm1_wide, np.array([-np.inf, np.nan, -1e4], dtype))
    assert edges[0] == -1 and np.isnan(edges[1]) and edges[2] == -1


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
def test_log_within_one_ulp_over_the_whole_range(dtype):
    info = np.finfo(dtype)
    rng = np.random.default_rng(2)
    x = np.concatenate([
        np.geomspace(info.smallest_subnormal, info.max / 2, 1_000_001, dtype=np.float64),
        rng.uniform(0, 2, 200_000),
        np.linspace(0.5, 2, 400_001),  # both sides of sqrt(1/2), 1 and sqrt(2)
        1 + rng.uniform(-1e-3, 1e-3, 100_000),  # results near 0
        rng.uniform(1e-15, 1, 200_000)]).astype(dtype)  # the criterions' clipped probabilities
    x = x[(x > 0) & (x != 1)]
    errors = _ulp_error(_apply(_map_log, x), np.log(x.astype(np.longdouble)), dtype)
    assert errors.max() < 0.9
    assert _apply(_map_log, np.ones(1, dtype))[0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_normal_is_log_on_normal_numbers_and_nan(dtype):
    info = np.finfo(dtype)
    rng = np.random.default_rng(3)
    x = np.concatenate([np.geomspace(info.tiny, info.max / 2, 300_001, dtype=np.float64),
                        rng.uniform(1e-15, 1, 200_000), [info.tiny, info.max]]).astype(dtype)
    assert np.array_equal(_apply(_map_log_normal, x), _apply(_map_log, x))
    assert np.isnan(_apply(_map_log_normal, np.array([np.nan], dtype))[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_every_float32_from_one_half_to_two(dtype):
    """Where the mantissa's split changes sides: every float32 of [0.5, 2), and as float64."""
    bits = np.arange(np.float32(0.5).view(np.int32), np.float32(2).view(np.int32), 7,
                     dtype=np.int32)
    x = bits.view(np.float32).astype(dtype)
    x = x[x != 1]
    errors = _ulp_error(_apply(_map_log, x), np.log(x.astype(np.longdouble)), dtype)
    assert errors.max() < 0.9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_edges(dtype):
    info = np.finfo(dtype)
    x = np.array([0.0, -0.0, -1.0, -np.inf, np.inf, np.nan, -np.nan, info.smallest_subnormal,
                  info.tiny, info.tiny * (1 - info.eps), info.max], dtype)
    result = _apply(_map_log, x)
    assert result[0] == result[1] == -np.inf
    assert np.isnan(result[2]) and np.isnan(result[3]) and result[4] == np.inf
    assert np.isnan(result[5]) and np.isnan(result[6])
    reference = np.log(x[7:].astype(np.longdouble))
    assert np.all(_ulp_error(result[7:], reference, dtype) < 0.9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log1p_unit_interval(dtype):
    y = np.concatenate([np.geomspace(np.finfo(dtype).tiny, 1, 300_000), [0.0, 1.0]]).astype(dtype)
    errors = _ulp_error(_apply(_map_log1p_unit, y), np.log1p(y.astype(np.longdouble)), dtype)
    assert errors.max() < 2.0
    assert _apply(_map_log1p_unit, np.zeros(1, dtype))[0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("columns", [1, 7, 8, 9, 16, 17, 1000])
def test_row_max(dtype, columns):
    x = np.random.default_rng(columns).standard_normal((5, columns)).astype(dtype)
    x[1, -1] = 50  # the maximum last, in the tail after the vectorized blocks
    x[2, :] = -np.inf
    x[3, 0] = np.inf
    x[4, columns // 2] = -1e30
    out = np.empty(5, dtype)
    _row_maxima(x, out)
    assert np.array_equal(out, x.max(axis=1))
    assert _row_maxima_of(np.empty((3, 0), dtype)).tolist() == [-np.inf] * 3


def _row_maxima_of(x):
    out = np.empty(x.shape[0], x.dtype)
    _row_maxima(x, out)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_max_of_a_row_with_nan_is_nan_or_the_largest_number(dtype):
    """Unspecified for NaN rows (see row_max); never a value that is neither."""
    x = np.random.default_rng(0).standard_normal((6, 1000)).astype(dtype)
    for row, column in enumerate([0, 1, 15, 500, 999]):
        x[row, column] = np.nan
    x[5, :] = np.nan
    out = _row_maxima_of(x)
    for row in range(5):
        assert np.isnan(out[row]) or out[row] == np.nanmax(x[row])
    assert np.isnan(out[5]) or out[5] == -np.inf


def _linked_ir(dispatcher):
    """The LLVM IR of a compiled dispatcher's library and of every library linked into it
    (a parallel variant's prange body is compiled in a library of its own)."""
    texts, pending, seen = [], [dispatcher.overloads[dispatcher.signatures[0]].library], set()
    while pending:
        library = pending.pop()
        if id(library) in seen:
            continue
        seen.add(id(library))
        texts.append(library.get_llvm_str())
        pending.extend(getattr(library, "_linking_libraries", ()))
    return "\n".join(texts)


def test_wide_vectors_marks_the_parallel_variant_only():
    """The attribute lands on the function Numba outlines a prange body into, and nowhere in
    a serial compile of the same body."""
    def body(x):
        for i in numba.prange(x.shape[0]):
            _vmath.wide_vectors()
            x[i] += 1

    attribute = '"prefer-vector-width"="512"'
    x = np.zeros(8)
    parallel = numba.njit(parallel=True)(body)
    parallel(x)
    serial = numba.njit(body)
    serial(x)
    assert np.array_equal(x, np.full(8, 2.0))
    parallel_ir, serial_ir = _linked_ir(parallel), _linked_ir(serial)
    assert attribute in parallel_ir and "__numba_parfor_gufunc" in parallel_ir
    assert attribute not in serial_ir
