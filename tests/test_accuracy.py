"""Accuracy does not pay for speed: against an extended-precision reference on the same
inputs (logits over the whole range: large negative, large positive, -inf entries), the
float32 kernels' largest relative error, over results that are normal numbers, is no worse
than torch's float32 ops' (where torch is installed), and float64 kernels stay under 1e-14
on inputs where float64 can be that accurate at all."""
import numpy as np
import pytest

from nnjit import kernels as K

try:
    import torch
except ImportError:
    torch = None

F = torch.nn.functional if torch else None


# Row widths: 300, and 100, where the float32 row kernels take their short-row loops
# (kernels/_vmath.py, SHORT_ROW_MASK).
COLUMNS = [300, 100]


def _logits(dtype, extreme, columns):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, columns)) * 3
    x[1] = rng.uniform(-30, 30, columns)
    x[2, ::3] = -np.inf
    x[3, 5] = -np.inf
    if extreme:
        x[4] = rng.uniform(-1e4, 1e4, columns)
        x[5] = rng.uniform(-1e4, 0, columns)
        x[6] = rng.uniform(-100, 100, columns)
        x[7, ::2] = 1e4
    return x.astype(dtype)


def _ld(x):
    return x.astype(np.longdouble)


def _log_softmax_reference(x):
    """In extended precision, the sum taken as ties + rest (the entries at the maximum, the
    others' exps) through log1p: with the 1 in the sum, 64 bits lost up to 1e-11 relative in
    float64 rows whose rest is 1e-9 (2 columns)."""
    x = _ld(x)
    shifted = x - x.max(axis=1, keepdims=True)
    at_top = shifted == 0
    rest = np.where(at_top, 0, np.exp(shifted)).sum(axis=1, keepdims=True)
    ties = at_top.sum(axis=1, keepdims=True)
    return shifted - np.log1p((ties - 1) + rest)


LABELS = np.random.default_rng(3).integers(0, min(COLUMNS), 64)


def _run(kernel, x):
    out = np.empty_like(x)
    return out, kernel(x, out)


def _cross_entropy(x):
    """(per-row losses, gradient) as CrossEntropyCriterion computes them: forward, then
    backward with the row statistics forward kept."""
    n = len(x)
    rows, top, total, grad = np.empty(n, x.dtype), np.empty(n, x.dtype), np.empty(n), np.empty_like(x)
    K.cross_entropy_labels_update_output.numba(x, LABELS, rows, top, total)
    K.cross_entropy_labels_update_grad_input.numba(x, LABELS, top, total, grad)
    return rows, grad


def _elu(x):
    out = np.empty(x.size, x.dtype)
    K.elu_update_output.numba(x.ravel(), out, x.dtype.type(1))
    return out


# name -> (ours(x) -> array, reference(x) -> longdouble array, torch(tensor) -> tensor)
OPS = {
    "softmax": (lambda x: _run(K.softmax_update_output.numba, x)[0],
                lambda x: np.exp(_log_softmax_reference(x)),
                lambda t: torch.softmax(t, 1)),
    "log_softmax": (lambda x: _run(K.log_softmax_update_output.numba, x)[0],
                    _log_softmax_reference,
                    lambda t: torch.log_softmax(t, 1)),
    "cross_entropy_rows": (
        lambda x: _cross_entropy(x)[0],
        lambda x: -_log_softmax_reference(x)[np.arange(len(x)), LABELS],
        lambda t: F.cross_entropy(t, torch.from_numpy(LABELS), reduction="none")),
    # the gradient as each library gives it, divided by the batch size: where that makes an
    # entry subnormal, both lose precision to it, and the comparison leaves it out
    "cross_entropy_grad": (
        lambda x: _cross_entropy(x)[1],
        lambda x: (np.exp(_log_softmax_reference(x)) - np.eye(x.shape[1])[LABELS]) / len(x),
        lambda t: (torch.softmax(t, 1) - F.one_hot(torch.from_numpy(LABELS), t.shape[1]).to(t.dtype))
        / len(t)),
    "elu": (lambda x: _elu(x),
            lambda x: np.where(x > 0, _ld(x), np.expm1(_ld(np.minimum(x, 0)))).ravel(),
            lambda t: F.elu(t).ravel()),
    "softplus": (lambda x: _run(K.softplus_update_output.numba, x.ravel())[0],
                 lambda x: np.logaddexp(np.longdouble(0), _ld(x)).ravel(),
                 lambda t: F.softplus(t).ravel()),
}


def _max_relative_error(result, reference, dtype):
    result, reference = np.asarray(result, np.longdouble), np.asarray(reference, np.longdouble)
    assert np.array_equal(np.isnan(result), np.isnan(reference)), "NaN where the reference has none, or the reverse"
    normal = np.isfinite(reference) & (np.abs(reference) >= np.finfo(dtype).tiny)
    assert np.array_equal(result[~normal & np.isinf(reference)], reference[~normal & np.isinf(reference)])
    return float(np.max(np.abs(result[normal] - reference[normal]) / np.abs(reference[normal])))


def _element_inputs(name, x):
    """ELU and SoftPlus see the logits scaled into their interesting range, -inf kept."""
    return x if name not in ("elu", "softplus") else np.where(np.isinf(x), x, x / 4)


@pytest.mark.torch
@pytest.mark.parametrize("columns", COLUMNS)
@pytest.mark.parametrize("name", list(OPS))
def test_float32_no_worse_than_torch(name, columns):
    pytest.importorskip("torch")
    ours, reference, theirs = OPS[name]
    x = _element_inputs(name, _logits(np.float32, True, columns))
    with np.errstate(all="ignore"):
        expected = reference(x)
    error = _max_relative_error(ours(x), expected, np.float32)
    torch_error = _max_relative_error(theirs(torch.from_numpy(x)).numpy(), expected, np.float32)
    print(f"{name}, {columns} columns: {error:.3g}; torch {torch_error:.3g}")
    assert error <= torch_error * 1.05 + 1e-9, (error, torch_error)


@pytest.mark.parametrize("columns", COLUMNS)
@pytest.mark.parametrize("name", list(OPS))
def test_float64_under_1e14(name, columns):
    ours, reference, _ = OPS[name]
    x = _element_inputs(name, _logits(np.float64, False, columns))
    with np.errstate(all="ignore"):
        expected = reference(x)
    error = _max_relative_error(ours(x), expected, np.float64)
    print(f"{name}, {columns} columns: {error:.3g}")
    assert error < 1e-14


def _confident_logits(dtype, seed, columns=300):
    """Rows whose first logit stands 8 above N(0, 3) noise: the log-softmax output at the
    maximum is -log(sum) with the sum near 1, small, its relative error the sum's rounding."""
    x = np.random.default_rng(seed).standard_normal((64, columns)) * 3
    x[:, 0] += 8
    return x.astype(dtype)


@pytest.mark.torch
@pytest.mark.parametrize("columns", COLUMNS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_of_confident_rows_no_worse_than_torch(dtype, columns):
    pytest.importorskip("torch")
    ours, reference, theirs = OPS["log_softmax"]
    errors, torch_errors = [], []
    for seed in range(30):
        x = _confident_logits(dtype, seed, columns)
        expected = reference(x)
        errors.append(_max_relative_error(ours(x), expected, dtype))
        torch_errors.append(_max_relative_error(theirs(torch.from_numpy(x)).numpy(), expected, dtype))
    print(f"{np.dtype(dtype).name}: median {np.median(errors):.3g} largest {max(errors):.3g};"
          f" torch {np.median(torch_errors):.3g} {max(torch_errors):.3g}")
    assert np.median(errors) <= np.median(torch_errors) * 1.05
    assert max(errors) <= max(torch_errors) * 1.05


# Widths around the kernel's loop boundaries: its short-row loops (32-63 past a multiple of
# 64, under 128 columns), the plain loops on either side, one vector or less, and wide rows
# (log-softmax's long-row kernel from 512 columns, its last block overlapping by 63 or 1).
EVERY_KIND_OF_WIDTH = [2, 10, 31, 32, 64, 90, 100, 127, 128, 300, 513, 575, 1000]


def _assert_within_a_few_ulp(errors, dtype, columns):
    """Largest relative errors of 30 row sets: median within 6 ulp, largest within 16."""
    eps = np.finfo(dtype).eps
    print(f"{np.dtype(dtype).name} {columns}: median {np.median(errors) / eps:.2f} ulp, "
          f"largest {max(errors) / eps:.2f}")
    assert np.median(errors) <= 6 * eps
    assert max(errors) <= 16 * eps


@pytest.mark.parametrize("columns", EVERY_KIND_OF_WIDTH)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_of_confident_rows_within_a_few_ulp_at_every_width(dtype, columns):
    """With the maximum's 1 counted apart from the sum of the other exps, a confident row's
    output at the maximum, -log(sum) with the sum near 1, keeps a few ulp at every width
    (measured, both dtypes: medians 1.1-3.1 ulp, largest 4.7; at 2 columns 4.6 and 8.7, the
    rounding of x - max, which exp scales by |x - max|, as in any implementation). Summed in
    float32 with the 1 in it, the median was hundreds of ulp (64 columns: 9.6e-5 relative,
    1.5x torch's on an Intel CPU)."""
    ours = OPS["log_softmax"][0]
    errors = []
    for seed in range(30):
        x = _confident_logits(dtype, seed, columns)
        errors.append(_max_relative_error(ours(x), _log_softmax_reference(x), dtype))
    _assert_within_a_few_ulp(errors, dtype, columns)


@pytest.mark.parametrize("columns", EVERY_KIND_OF_WIDTH)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_of_confident_rows_within_a_few_ulp_at_every_width(dtype, columns):
    """The loss of a confident row whose label is its maximum is log(sum) with the sum near 1:
    counted apart from the maximum's 1 (float64, and float32 from 128 columns) or summed in
    float64 (shorter float32 rows), it keeps a few ulp at every width. Summed in float64 with
    the 1 in it, float64 rows of 10 columns were 8.6x torch's largest error."""
    errors = []
    for seed in range(30):
        x = _confident_logits(dtype, seed, columns)
        n = len(x)
        labels = np.zeros(n, np.int64)
        rows, top, total = np.empty(n, dtype), np.empty(n, dtype), np.empty(n)
        K.cross_entropy_labels_update_output.numba(x, labels, rows, top, total)
        expected = -_log_softmax_reference(x)[np.arange(n), labels]
        errors.append(_max_relative_error(rows, expected, dtype))
    _assert_within_a_few_ulp(errors, dtype, columns)


@pytest.mark.parametrize("columns", [10, 100, 300, 1000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_with_dense_targets_as_accurate_as_with_labels(dtype, columns):
    """Dense targets take the loss as sum(t * (top - x)) + sum(t) * log(sum of exps), every
    term positive: one-hot rows (the confident rows of the test above) and label-smoothed rows
    stay within a few ulp of the reference, and the rows' target sums are their sums."""
    errors = []
    for seed in range(30):
        x = _confident_logits(dtype, seed, columns)
        n = len(x)
        one_hot = np.eye(columns, dtype=dtype)[np.zeros(n, np.int64)]
        smoothed = (0.9 * one_hot + 0.1 / columns).astype(dtype)
        rows, top, total = np.empty(n, dtype), np.empty(n, dtype), np.empty(n)
        mass = np.empty(n, dtype)
        for target in (one_hot, smoothed):
            K.cross_entropy_update_output.numba(x, target, rows, top, total, mass)
            expected = -(_ld(target) * _log_softmax_reference(x)).sum(axis=1)
            errors.append(_max_relative_error(rows, expected, dtype))
            np.testing.assert_allclose(mass, target.sum(axis=1, dtype=np.float64),
                                       rtol=columns * np.finfo(dtype).eps)
    _assert_within_a_few_ulp(errors, dtype, columns)


@pytest.mark.parametrize("columns", COLUMNS)
def test_float32_cross_entropy_of_confident_rows_within_four_ulp(columns):
    """The loss of a confident row whose label is its maximum is log(sum) with the sum near
    1. With the maximum's 1 counted apart from the rest of the float32 sum, the small loss
    keeps a few ulp (measured: median 1.6, largest 2.8); summed in float32 with the 1 in it
    (as torch does: median 3e-5, largest 7e-4 relative here) it would be the sum's rounding
    over the loss (33 ulp and more here)."""
    errors, torch_errors = [], []
    for seed in range(30):
        x = _confident_logits(np.float32, seed, columns)
        n = len(x)
        labels = np.zeros(n, np.int64)
        rows, top, total = np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n)
        K.cross_entropy_labels_update_output.numba(x, labels, rows, top, total)
        expected = -_log_softmax_reference(x)[np.arange(n), labels]
        errors.append(_max_relative_error(rows, expected, np.float32))
        if torch is not None:
            theirs = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(labels), reduction="none")
            torch_errors.append(_max_relative_error(theirs.numpy(), expected, np.float32))
    print(f"median {np.median(errors):.3g} largest {max(errors):.3g}" + (
        f"; torch {np.median(torch_errors):.3g} {max(torch_errors):.3g}" if torch_errors else ""))
    assert max(errors) < 4 * np.finfo(np.float32).eps, max(errors)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("columns", COLUMNS)
def test_float32_cross_entropy_gradient_at_the_label_of_confident_rows_within_four_ulp(
        columns, backend):
    """At a confident row's label the gradient is (p - 1) / n with p near 1: it cancels, and
    the error p carries becomes the result's. Rounded once from float64 the entry keeps a few
    ulp (measured: largest 2.3 at 100 columns, 2.9 at 300); taken as p / n - 1 / n in float32
    it was up to 1.1e-4 relative (torch's: up to 8.2e-4 here)."""
    errors = []
    for seed in range(30):
        x = _confident_logits(np.float32, seed, columns)
        n = len(x)
        labels = np.zeros(n, np.int64)
        rows, top, total, grad = np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n), \
            np.empty_like(x)
        getattr(K.cross_entropy_labels_update_output, backend)(x, labels, rows, top, total)
        getattr(K.cross_entropy_labels_update_grad_input, backend)(x, labels, top, total, grad)
        expected = (np.exp(_log_softmax_reference(x)[:, 0]) - 1) / n
        errors.append(_max_relative_error(grad[:, 0], expected, np.float32))
    print(f"median {np.median(errors):.3g} largest {max(errors):.3g}")
    assert max(errors) < 4 * np.finfo(np.float32).eps, max(errors)


def _batch_norm(x, variant):
    n, c = x.shape
    out, save_mean, save_invstd = np.empty_like(x), np.empty(c), np.empty(c)
    getattr(K.batch_norm_update_output, variant)(x, out, np.zeros(c, x.dtype), np.ones(c, x.dtype),
                                                 save_mean, save_invstd, 0.9, 1e-5, True)
    return out


def _batch_norm_columns():
    """Columns whose statistics are hard to take in float32: a large offset, a tiny spread,
    a constant, an outlier in the first row (the per-task shift)."""
    rng = np.random.default_rng(11)
    n = 300
    columns = [rng.standard_normal(n), 1e4 + rng.standard_normal(n), 1 + 1e-3 * rng.standard_normal(n),
               np.full(n, 0.1), np.append(1e3, rng.standard_normal(n - 1)),
               rng.standard_normal(n) * 1e-3 - 5]
    return np.stack(columns, axis=1).repeat(20, axis=1)


@pytest.mark.torch
@pytest.mark.parametrize("variant", ["serial", "parallel"])
def test_batch_norm_statistics_float32_no_worse_than_torch(variant):
    pytest.importorskip("torch")
    x = _batch_norm_columns().astype(np.float32)
    exact = x.astype(np.longdouble)
    reference = (exact - exact.mean(axis=0)) / np.sqrt(exact.var(axis=0) + np.longdouble(1e-5))
    error = np.abs(_batch_norm(x, variant) - reference).max(axis=0)
    torch_out = F.batch_norm(torch.from_numpy(x), None, None, training=True, eps=1e-5).numpy()
    torch_error = np.abs(torch_out - reference).max(axis=0)
    assert np.all(error <= torch_error * 1.05 + 1e-9), (error.max(), torch_error.max())
    assert np.all(_batch_norm(x, variant)[:, 60:80] == 0)  # the constant column: exactly 0


def test_batch_norm_float64_statistics():
    """Under 2e-12 absolute: the column at 1e4 +- 1 alone costs 7e-13 (x - mean cancels four
    of float64's digits; the NumPy twin's error there is 4.7e-12)."""
    x = _batch_norm_columns()
    exact = x.astype(np.longdouble)
    reference = (exact - exact.mean(axis=0)) / np.sqrt(exact.var(axis=0) + np.longdouble(1e-5))
    for variant in ["serial", "parallel"]:
        assert np.abs(_batch_norm(x, variant) - reference).max() < 2e-12


def _batch_statistics(x, path):
    """(mean, biased variance) float64 as batch_norm_update_output's path computes them (alpha
    0 and float64 moving arrays, so the moving statistics are the batch's, unrounded)."""
    c = x.shape[1]
    mean, variance = np.zeros(c), np.ones(c)
    path(x, np.empty_like(x), mean, variance, np.empty(c), np.empty(c), 0.0, 1e-3, True)
    return mean, variance


def _statistics_errors(x):
    """{path: (mean error, variance error)}: the largest absolute error of the mean and
    relative error of the variance, rounded to x's dtype, against a long-double reference."""
    exact = x.astype(np.longdouble)
    mean, variance = exact.mean(axis=0), exact.var(axis=0)
    kernel = K.batch_norm_update_output
    errors = {}
    for name, path in [("serial", kernel.serial), ("parallel", kernel.parallel),
                       ("numpy", kernel.numpy)]:
        # rounded to x's dtype, as the moving statistics are kept: for float32 input, errors
        # far below float32's precision (1e-15) say nothing about either path
        m, v = (s.astype(x.dtype).astype(np.longdouble) for s in _batch_statistics(x, path))
        errors[name] = (float(np.abs(m - mean).max()),
                        float((np.abs(v - variance) / np.maximum(variance, 1e-300)).max()))
    return errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_statistics_as_accurate_as_numpy_at_small_batches(dtype):
    """1200 random batches of 2 to 64 rows (the shapes people test with), uniform in [-5, 5]
    or at an offset: the Numba paths' batch mean and variance are as accurate as the NumPy
    path's (float64 sums), on average and at worst. A float32 sum was 10x less accurate."""
    rng = np.random.default_rng(2024)
    totals = {name: np.zeros(2) for name in ("serial", "parallel", "numpy")}
    worst = {name: np.zeros(2) for name in totals}
    for trial in range(1200):
        n, c = rng.integers(2, 65), rng.integers(1, 34)
        x = rng.uniform(-5, 5, (n, c)) + (100 * rng.standard_normal(c) if trial % 4 == 0 else 0)
        for name, errors in _statistics_errors(x.astype(dtype)).items():
            totals[name] += errors
            worst[name] = np.maximum(worst[name], errors)
    for name in ("serial", "parallel"):
        assert np.all(totals[name] <= totals["numpy"] * 1.02), (name, totals)
        assert np.all(worst[name] <= worst["numpy"] * 1.25), (name, worst)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_statistics_as_accurate_as_numpy_at_4096x1024(dtype):
    x = np.random.default_rng(5).uniform(-5, 5, (4096, 1024)).astype(dtype)
    errors = _statistics_errors(x)
    for name in ("serial", "parallel"):
        assert np.all(np.array(errors[name]) <= np.array(errors["numpy"]) * 1.02), errors


@pytest.mark.torch
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_batch_norm_moving_mean_matches_torch_running_mean(backend):
    """The outside check that failed 63 times in 100 on the Numba path: BatchNormalization's
    moving statistics against torch's running ones at np.allclose's default tolerances."""
    import nnjit
    pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    for trial in range(100):
        x = rng.uniform(-5, 5, (32, 16)).astype(np.float32)
        layer = nnjit.BatchNormalization(alpha=0.9)
        reference = torch.nn.BatchNorm1d(16, eps=layer.EPS, momentum=0.1, affine=False)
        with nnjit.backend(backend):
            out = layer.forward(x)
        torch_out = reference(torch.from_numpy(x)).detach().numpy()
        assert np.allclose(layer.moving_mean, reference.running_mean.numpy()), trial
        # torch's running variance takes the unbiased batch variance, nnjit's the biased one
        # (as the seed): 0.9 * 1 + 0.1 * var * n / (n - 1) against 0.9 * 1 + 0.1 * var
        as_unbiased = 0.9 + (layer.moving_variance - 0.9) * 32 / 31
        assert np.allclose(as_unbiased, reference.running_var.numpy()), trial
        np.testing.assert_allclose(out, torch_out, rtol=1e-5, atol=2e-6)
