"""Every Numba kernel against its NumPy twin: same arrays in, same arrays and results out."""
import numpy as np
import pytest

import nnjit.kernels as K
from conftest import DTYPES, tolerance

# (rows, columns): one row, odd sizes, a one-column batch, an empty batch, and larger ones,
# on which the parallel variant is checked too, whatever the size thresholds of _config.py.
SHAPES = [(1, 7), (5, 13), (3, 1), (0, 4), (301, 257), (1, 40000)]
PARALLEL_CHECKED = {(0, 4), (301, 257), (1, 40000)}


def _probabilities(r, n, c, dt):
    p = r.random((n, c)) + 0.05
    return (p / p.sum(axis=1, keepdims=True)).astype(dt)


def _log_probabilities(r, n, c, dt):
    return np.log(_probabilities(r, n, c, dt)).astype(dt)


def _soft_target(r, n, c, dt):
    t = _probabilities(r, n, c, dt)
    t[r.random((n, c)) < 0.3] = 0  # zeros exercise the skip of zero-target terms
    return t


def _labels(r, n, c):
    return r.integers(0, c, n).astype(np.int64)


def _x(r, n, c, dt, scale=3.0):
    return (r.standard_normal((n, c)) * scale).astype(dt)


def _flat(r, n, c, dt):
    x = _x(r, n, c, dt).reshape(-1)
    if x.size > 2:
        x[:2] = 0  # exactly 0: the point where ReLU-like gradients switch
    return x


def _with_row_statistics(x, target, grad_input):
    """Cross-entropy backward's arguments: the row maxima and sums of exp its forward keeps."""
    top = x.max(axis=1, initial=-np.inf)
    total = np.exp(x.astype(np.float64) - top[:, None]).sum(axis=1)
    return [x, target, top, total, grad_input]


def _grid(r, n, c, dt):
    """_flat as the (n, c) array modules pass the element-wise kernels."""
    return _flat(r, n, c, dt).reshape(n, c)


def _empty(n, c, dt):
    return np.full((n, c), np.nan, dtype=dt)


def _eps(dt):
    return dt(1e-15)


def _images(r, n, c, dt, channels=2, scale=0.5):
    """(n, channels, 5, 4 + c % 9) images: the conv and pooling kernels' (n, c) mapping. The
    scale is moderate: a float32 convolution's error follows the size of its terms, and near-zero
    outputs of large terms would measure that, not the kernel."""
    return (r.standard_normal((n, channels, 5, 4 + c % 9)) * scale).astype(dt)


def _conv_args(r, n, c, dt):
    """input, weight (3, 2, 3, 3), bias, output of a 3x3 convolution, stride 1, padding 1."""
    x = _images(r, n, c, dt)
    out_shape = (n, 3, x.shape[2], x.shape[3])
    return x, _x(r, 3, 18, dt, scale=0.5).reshape(3, 2, 3, 3), _x(r, 1, 3, dt)[0], out_shape


def _conv_scratch(n, out_shape, dt, channels):
    positions = out_shape[2] * out_shape[3]
    chunk = max(min(n, 2), 1)
    return [np.full((18, chunk * positions), np.nan, dt), np.full((channels, chunk * positions), np.nan, dt)]


GEOMETRY = (1, 1, 1, 1)


def _conv_kernel_args(kind):
    def build(r, n, c, dt):
        x, weight, bias, out_shape = _conv_args(r, n, c, dt)
        grad_output = _x(r, 1, int(np.prod(out_shape)), dt, scale=0.5).reshape(out_shape)
        if kind == "output":
            return [x, weight, bias, np.full(out_shape, np.nan, dt), *GEOMETRY]
        if kind == "grad_input":
            return [grad_output, weight, np.full(x.shape, np.nan, dt), *GEOMETRY]
        if kind == "grad_weight":
            return [x, grad_output, np.ones(weight.shape, dt), *GEOMETRY]
        if kind == "gemm_output":
            return [x, weight, bias, np.full(out_shape, np.nan, dt), *GEOMETRY,
                    *_conv_scratch(n, out_shape, dt, 3)]
        if kind == "gemm_grad_input":
            return [grad_output, weight, np.full(x.shape, np.nan, dt), *GEOMETRY,
                    *_conv_scratch(n, out_shape, dt, 3)]
        if kind == "wide_output":
            return [x, weight, bias, np.full(out_shape, np.nan, dt), 1, 1,
                    _wide_padded(n, 2, x, dt)]
        if kind == "wide_grad_input":  # padded by kernel - 1 - padding = 1 on each side
            return [grad_output, weight, np.full(x.shape, np.nan, dt), 1, 1,
                    _wide_padded(n, 3, x, dt)]
        if kind == "wide_grad_parameters":
            return [x, grad_output, np.ones(weight.shape, dt), np.ones(3, dt), True, 1, 1,
                    _wide_padded(n, 2, x, dt)]
        return [x, grad_output, np.ones(weight.shape, dt), *GEOMETRY,
                *_conv_scratch(n, out_shape, dt, 3)]
    return build


def _wide_padded(n, channels, x, dt):
    return np.full(K.wide_padded_size(n, channels, *x.shape[2:], 1, 1), np.nan, dt)


def _pool_args(r, n, c, dt, backward=False):
    x = _images(r, n, c, dt)
    out_shape = (n, 2, 2, x.shape[3] // 2)
    if not backward:
        return [x, np.full(out_shape, np.nan, dt), np.full(out_shape, -1, np.int64), 2, 2, 2, 2, 0, 0]
    indices = r.integers(0, x.shape[2] * x.shape[3], out_shape)
    return [_x(r, 1, int(np.prod(out_shape)), dt).reshape(out_shape), indices,
            np.full(x.shape, np.nan, dt)]


ARGS = {
    "conv2d_direct_update_output": _conv_kernel_args("output"),
    "conv2d_small_update_output": _conv_kernel_args("output"),
    "conv2d_direct_update_grad_input": _conv_kernel_args("grad_input"),
    "conv2d_small_update_grad_input": _conv_kernel_args("grad_input"),
    "conv2d_direct_acc_grad_weight": _conv_kernel_args("grad_weight"),
    "conv2d_gemm_update_output": _conv_kernel_args("gemm_output"),
    "conv2d_gemm_update_grad_input": _conv_kernel_args("gemm_grad_input"),
    "conv2d_gemm_acc_grad_weight": _conv_kernel_args("gemm_grad_weight"),
    "conv2d_wide_update_output": _conv_kernel_args("wide_output"),
    "conv2d_wide_update_grad_input": _conv_kernel_args("wide_grad_input"),
    "conv2d_wide_acc_grad_parameters": _conv_kernel_args("wide_grad_parameters"),
    "conv2d_acc_grad_bias": lambda r, n, c, dt: [
        _x(r, 1, n * 3 * 5 * (4 + c % 9), dt).reshape(n, 3, 5, 4 + c % 9), np.ones(3, dt)],
    "max_pool2d_update_output": lambda r, n, c, dt: _pool_args(r, n, c, dt),
    "avg_pool2d_update_output": lambda r, n, c, dt: [
        _images(r, n, c, dt), np.full((n, 2, 3, (4 + c % 9 + 2 - 3) // 2 + 1), np.nan, dt),
        3, 3, 2, 2, 1, 1],
    "avg_pool2d_update_grad_input": lambda r, n, c, dt: [
        _x(r, 1, n * 2 * 3 * ((4 + c % 9 + 2 - 3) // 2 + 1), dt).reshape(
            n, 2, 3, (4 + c % 9 + 2 - 3) // 2 + 1),
        np.full((n, 2, 5, 4 + c % 9), np.nan, dt), 3, 3, 2, 2, 1, 1],
    "max_pool2d_update_grad_input": lambda r, n, c, dt: _pool_args(r, n, c, dt, backward=True),
    "softmax_update_output": lambda r, n, c, dt: [_x(r, n, c, dt), _empty(n, c, dt)],
    "softmax_update_grad_input": lambda r, n, c, dt: [
        _probabilities(r, n, c, dt), _x(r, n, c, dt), _empty(n, c, dt)],
    "log_softmax_update_output": lambda r, n, c, dt: [_x(r, n, c, dt), _empty(n, c, dt)],
    "log_softmax_long_rows_update_output": lambda r, n, c, dt: [_x(r, n, c, dt), _empty(n, c, dt)],
    "log_softmax_update_grad_input": lambda r, n, c, dt: [
        _log_probabilities(r, n, c, dt), _x(r, n, c, dt), _empty(n, c, dt)],
    "nll_prob_labels_update_output": lambda r, n, c, dt: [
        _probabilities(r, n, c, dt), _labels(r, n, c), np.empty(n, dt), _eps(dt)],
    "nll_prob_labels_update_grad_input": lambda r, n, c, dt: [
        _probabilities(r, n, c, dt), _labels(r, n, c), _empty(n, c, dt), _eps(dt)],
    "nll_prob_update_output": lambda r, n, c, dt: [
        _probabilities(r, n, c, dt), _soft_target(r, n, c, dt), np.empty(n, dt), _eps(dt),
        np.empty(n, dt)],
    "nll_prob_update_grad_input": lambda r, n, c, dt: [
        _probabilities(r, n, c, dt), _soft_target(r, n, c, dt), _empty(n, c, dt), _eps(dt),
        np.empty(n, dt)],
    "nll_log_labels_update_output": lambda r, n, c, dt: [
        _log_probabilities(r, n, c, dt), _labels(r, n, c), np.empty(n, dt)],
    "nll_log_labels_update_grad_input": lambda r, n, c, dt: [
        _log_probabilities(r, n, c, dt), _labels(r, n, c), _empty(n, c, dt)],
    "nll_log_update_output": lambda r, n, c, dt: [
        _log_probabilities(r, n, c, dt), _soft_target(r, n, c, dt), np.empty(n, dt),
        np.empty(n, dt)],
    "nll_log_update_grad_input": lambda r, n, c, dt: [
        _log_probabilities(r, n, c, dt), _soft_target(r, n, c, dt), _empty(n, c, dt),
        np.empty(n, dt)],
    "cross_entropy_labels_update_output": lambda r, n, c, dt: [
        _x(r, n, c, dt), _labels(r, n, c), np.empty(n, dt), np.empty(n, dt), np.empty(n)],
    "cross_entropy_labels_long_rows_update_output": lambda r, n, c, dt: [
        _x(r, n, c, dt), _labels(r, n, c), np.empty(n, dt), np.empty(n, dt), np.empty(n)],
    "cross_entropy_labels_update_grad_input": lambda r, n, c, dt: _with_row_statistics(
        _x(r, n, c, dt), _labels(r, n, c), _empty(n, c, dt)),
    "cross_entropy_update_output": lambda r, n, c, dt: [
        _x(r, n, c, dt), _soft_target(r, n, c, dt), np.empty(n, dt), np.empty(n, dt), np.empty(n),
        np.empty(n, dt)],
    "cross_entropy_update_grad_input": lambda r, n, c, dt: _with_row_statistics(
        _x(r, n, c, dt), _soft_target(r, n, c, dt), _empty(n, c, dt)) + [np.empty(n, dt)],
    "first_bad_distribution": lambda r, n, c, dt: [
        np.where(r.random(n) < 0.3, r.random(n) * 2, 1 + r.standard_normal(n) * 1e-9).astype(dt),
        1e-6],
    "mse_update_output": lambda r, n, c, dt: [_x(r, n, c, dt), _x(r, n, c, dt), np.empty(n, dt)],
    "mse_update_grad_input": lambda r, n, c, dt: [
        _x(r, n, c, dt), _x(r, n, c, dt), _empty(n, c, dt)],
    "dropout_update_output": lambda r, n, c, dt: [
        _flat(r, n, c, dt), np.empty(n * c, dt), K.drop_threshold(0.3), dt(1 / 0.7),
        np.uint64(r.integers(0, 2**63))],
    "dropout_update_grad_input": lambda r, n, c, dt: [
        _flat(r, n, c, dt), np.empty(n * c, dt), K.drop_threshold(0.6), dt(1 / 0.4),
        np.uint64(r.integers(0, 2**63))],
    "leaky_relu_dropout_update_output": lambda r, n, c, dt: [
        _grid(r, n, c, dt), _empty(n, c, dt), _empty(n, c, dt), dt(0.03), K.drop_threshold(0.3),
        dt(1 / 0.7), np.uint64(r.integers(0, 2**63))],
    "leaky_relu_dropout_update_grad_input": lambda r, n, c, dt: [
        _grid(r, n, c, dt), _grid(r, n, c, dt), _empty(n, c, dt), _empty(n, c, dt), dt(0.03),
        K.drop_threshold(0.6), dt(1 / 0.4), np.uint64(r.integers(0, 2**63))],
    "relu_update_output": lambda r, n, c, dt: [_grid(r, n, c, dt), _empty(n, c, dt)],
    "relu_update_grad_input": lambda r, n, c, dt: [
        _grid(r, n, c, dt), _grid(r, n, c, dt), _empty(n, c, dt)],
    "leaky_relu_update_output": lambda r, n, c, dt: [
        _grid(r, n, c, dt), _empty(n, c, dt), dt(0.03)],
    "leaky_relu_update_grad_input": lambda r, n, c, dt: [
        _grid(r, n, c, dt), _grid(r, n, c, dt), _empty(n, c, dt), dt(0.03)],
    "elu_update_output": lambda r, n, c, dt: [_grid(r, n, c, dt), _empty(n, c, dt), dt(1.3)],
    "elu_update_grad_input": lambda r, n, c, dt: [
        _grid(r, n, c, dt), _grid(r, n, c, dt), _empty(n, c, dt), dt(1.3)],
    "softplus_update_output": lambda r, n, c, dt: [
        _grid(r, n, c, dt) * dt(10), _empty(n, c, dt)],
    "softplus_update_grad_input": lambda r, n, c, dt: [
        _grid(r, n, c, dt) * dt(10), _grid(r, n, c, dt), _empty(n, c, dt)],
    "batch_norm_update_output": lambda r, n, c, dt: [
        _x(r, n, c, dt) + dt(2), _empty(n, c, dt), r.standard_normal(c).astype(dt),
        r.random(c).astype(dt) + dt(0.5), np.empty(c), np.empty(c), 0.3, 1e-3,
        bool(n > 0 and r.random() < 2)],
    "batch_norm_update_grad_input": lambda r, n, c, dt: [
        _x(r, n, c, dt), _x(r, n, c, dt), _empty(n, c, dt), r.standard_normal(c),
        r.random(c) + 0.5, True],
    "batch_norm_statistics": lambda r, n, c, dt: [_x(r, n, c, dt) + dt(2), np.empty((2, c))],
    "batch_norm_normalize": lambda r, n, c, dt: [
        _x(r, n, c, dt) + dt(2), _empty(n, c, dt), r.standard_normal(c) + 2, r.random(c) + 0.5],
    # all terms positive: sums without cancellation, comparable at an elementwise tolerance
    "batch_norm_grad_sums": lambda r, n, c, dt: [
        np.abs(_x(r, n, c, dt)), np.abs(_x(r, n, c, dt)), -1 - r.random(c), r.random(c) + 0.5,
        np.empty((2, c))],
    "batch_norm_grad_apply": lambda r, n, c, dt: [
        _x(r, n, c, dt), _x(r, n, c, dt), _empty(n, c, dt), r.standard_normal(c),
        r.random(c) + 0.5, r.standard_normal((2, c)) * 3, 3 * n + 1],
    "channelwise_scaling_update_output": lambda r, n, c, dt: [
        _x(r, n, c, dt), _empty(n, c, dt), r.standard_normal(c).astype(dt),
        r.standard_normal(c).astype(dt)],
    "channelwise_scaling_update_grad_input": lambda r, n, c, dt: [
        _x(r, n, c, dt), _empty(n, c, dt), r.standard_normal(c).astype(dt)],
    "channelwise_scaling_acc_grad_parameters": lambda r, n, c, dt: [
        _x(r, n, c, dt), _x(r, n, c, dt), r.standard_normal(c).astype(dt),
        r.standard_normal(c).astype(dt)],
    "bias_add": lambda r, n, c, dt: [_x(r, n, c, dt), r.standard_normal(c).astype(dt)],
    "bias_acc_grad": lambda r, n, c, dt: [_x(r, n, c, dt), r.standard_normal(c).astype(dt)],
    "linear_update_output": lambda r, n, c, dt: [
        _x(r, n, c, dt), _empty(n, 9, dt), _x(r, 9, c, dt), r.standard_normal(9).astype(dt)],
    "linear_acc_grad_parameters": lambda r, n, c, dt: [
        _x(r, n, c, dt), _x(r, n, 9, dt), _x(r, 9, c, dt), r.standard_normal(9).astype(dt),
        _empty(9, c, dt)],
    "linear_first_grad_parameters": lambda r, n, c, dt: [
        _x(r, n, c, dt), _x(r, n, 9, dt), np.zeros((9, c), dt), r.standard_normal(9).astype(dt)],
    "sgd_momentum_step": lambda r, n, c, dt: [
        _flat(r, n, c, dt), _flat(r, n, c, dt), _flat(r, n, c, dt), dt(0.1), dt(0.9)],
    "zero_fill": lambda r, n, c, dt: [_flat(r, n, c, dt)],
    "adam_step": lambda r, n, c, dt: [
        _flat(r, n, c, dt), _flat(r, n, c, dt), _flat(r, n, c, dt), np.abs(_flat(r, n, c, dt)),
        dt(1e-3), dt(0.9), dt(0.999), dt(1e-8), dt(0.1), dt(0.001)],
}


def test_every_kernel_has_a_numpy_twin_and_a_test():
    assert set(ARGS) == set(K.ALL_KERNELS)
    for name, kernel in K.ALL_KERNELS.items():
        assert callable(kernel.numba) and callable(kernel.numpy), name


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(ARGS))
def test_numba_kernel_matches_numpy_twin(name, dtype, shape):
    kernel = K.ALL_KERNELS[name]
    args = ARGS[name](np.random.default_rng(7), *shape, dtype)
    variants = [kernel.numba]
    if shape in PARALLEL_CHECKED and hasattr(kernel, "parallel"):
        variants += [kernel.serial, kernel.parallel]
    for variant in variants:
        _check_against_twin(variant, kernel.numpy, args, dtype)


# The row kernels whose float32 rows of 32-63 columns past a multiple of 64, under 128, take
# loops of their own (kernels/_vmath.py, short_rows), and widths around them.
SHORT_ROW_KERNELS = ["softmax_update_output", "log_softmax_update_output",
                     "cross_entropy_labels_update_output", "cross_entropy_update_output"]


@pytest.mark.parametrize("shape", [(5, 100), (3, 127), (64, 37), (301, 97), (7, 96), (9, 64),
                                   (4, 128), (2, 31)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", SHORT_ROW_KERNELS)
def test_row_kernels_at_short_row_widths(name, dtype, shape):
    kernel = K.ALL_KERNELS[name]
    args = ARGS[name](np.random.default_rng(5), *shape, dtype)
    for variant in (kernel.numba, kernel.serial, kernel.parallel):
        _check_against_twin(variant, kernel.numpy, args, dtype)


ELEMENTWISE = [name for name in ARGS if name.startswith(("relu", "leaky_relu", "elu", "softplus"))]


@pytest.mark.parametrize("shape", [(77357,), (3, 7), (64, 3, 20, 21), (2, 0, 5)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_kernels_take_any_number_of_dimensions(name, shape):
    """Modules pass their arrays as they come: each variant writes every element in place."""
    kernel = K.ALL_KERNELS[name]
    rows, columns = (shape[0], int(np.prod(shape[1:]))) if len(shape) > 1 else (1, shape[0])
    args = [a.reshape(shape) if isinstance(a, np.ndarray) else a
            for a in ARGS[name](np.random.default_rng(3), rows, columns, np.float32)]
    for variant in (kernel.numba, kernel.serial, kernel.parallel):
        _check_against_twin(variant, kernel.numpy, args, np.float32)


@pytest.mark.parametrize("size", [12, 300_000], ids=["serial", "parallel"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_numba_path_refuses_what_it_cannot_take_with_an_error_naming_the_kernel(name, size):
    """A strided array, an output of another size or a list: a ValueError or TypeError naming
    the kernel and its arguments, whichever way the Numba path is called, never Numba's own
    NotImplementedError or typing error."""
    kernel = K.ALL_KERNELS[name]
    args = ARGS[name](np.random.default_rng(4), 2, size // 2, np.float64)
    strided = [np.repeat(a, 2, axis=1)[:, ::2] if isinstance(a, np.ndarray) else a for a in args]
    short = [a if not isinstance(a, np.ndarray) or index == 0 else a[:, :-1].copy()
             for index, a in enumerate(args)]
    listed = [a.tolist() if index == 0 else a for index, a in enumerate(args)]
    for call in (kernel, kernel.numba):
        with pytest.raises(ValueError, match=rf"nnjit kernel {name}\(float64 array .*not C-contiguous"):
            call(*strided)
        with pytest.raises(ValueError, match=rf"nnjit kernel {name}\(.*C-contiguous arrays"):
            call(*short)
        with pytest.raises(TypeError, match=rf"nnjit kernel {name}\(list, "):
            call(*listed)
    # the same strided arrays are fine on the NumPy path, and the Numba path still computes
    with K.backend("numpy"):
        kernel(*[a.copy() if isinstance(a, np.ndarray) else a for a in strided])
    _check_against_twin(kernel.numba, kernel.numpy, args, np.float64)


# Scratch buffers of the BLAS-path kernels: their content is the kernel's business, not compared.
SCRATCH = {"conv2d_gemm_update_output": (8, 9), "conv2d_gemm_update_grad_input": (7, 8),
           "conv2d_gemm_acc_grad_weight": (7, 8), "conv2d_wide_update_output": (6,),
           "conv2d_wide_update_grad_input": (5,), "conv2d_wide_acc_grad_parameters": (7,)}


def _check_against_twin(variant, twin, args, dtype):
    scratch = SCRATCH.get(twin.__name__.removesuffix("_numpy"), ())
    numba_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    numpy_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    numba_result = variant(*numba_args)
    numpy_result = twin(*numpy_args)
    tol = tolerance(dtype)
    if isinstance(numpy_result, (int, np.integer)):  # a count (cross-entropy's stale rows)
        assert numba_result == numpy_result
    elif numpy_result is not None:
        assert np.asarray(numba_result).dtype == dtype or isinstance(numba_result, float)
        np.testing.assert_allclose(numba_result, numpy_result, **tol)
    for index, (got, want) in enumerate(zip(numba_args, numpy_args)):
        if isinstance(got, np.ndarray) and index not in scratch:
            assert got.dtype == want.dtype, f"argument {index}"
            np.testing.assert_allclose(got, want, **tol, err_msg=f"argument {index}")


@pytest.mark.parametrize("name", ["dropout_update_output", "dropout_update_grad_input"])
def test_dropout_twins_drop_exactly_the_same_elements(name):
    kernel = K.ALL_KERNELS[name]
    args = ARGS[name](np.random.default_rng(3), 97, 1031, np.float32)
    a, b = [x.copy() if isinstance(x, np.ndarray) else x for x in args], list(args)
    b[1] = b[1].copy()
    kernel.numba(*a)
    kernel.numpy(*b)
    np.testing.assert_array_equal(a[1] == 0, b[1] == 0)
    np.testing.assert_array_equal(a[1], b[1])


# long-row kernel: (the kernel that hands it long rows, the position of its per-row result)
LONG_ROW_KERNELS = {"log_softmax_long_rows_update_output": ("log_softmax_update_output", 1),
                    "cross_entropy_labels_long_rows_update_output":
                        ("cross_entropy_labels_update_output", 2)}


@pytest.mark.parametrize("c", [1, 10, 63, 64, 65, 127, 512, 513, 575, 576, 1000])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(LONG_ROW_KERNELS))
def test_long_row_kernels_whatever_the_last_block(name, dtype, c):
    """The long-row kernels take a row's last partial block as the 64 entries ending the row,
    those the loop took already weighted by 0: maxima repeated on either side of the block's
    start, and NaN and -inf there, must count once, as in the twin; in both variants, and
    through the kernel that hands them rows of LONG_ROW columns and up. A row with a NaN has
    NaN results and unspecified statistics (cross-entropy's row maximum: _vmath.row_max)."""
    r = np.random.default_rng(c)
    n = 24
    args = ARGS[name](r, n, c, dtype)
    x = args[0]
    overlap_start, body_end = max(c - 64, 0), c - c % 64 if c >= 64 else c
    for row, columns in enumerate([[overlap_start], [c - 1], [overlap_start, c - 1],
                                   [body_end - 1, body_end % c], list(range(overlap_start, c))]):
        x[row, columns] = x[row].max() + 1  # the maximum, at each of these columns
    x[5, overlap_start] = np.nan
    x[6, c - 1] = np.nan
    x[7, overlap_start] = -np.inf
    x[8, [overlap_start, c - 1]] = -np.inf
    long_rows = K.ALL_KERNELS[name]
    rows, result = LONG_ROW_KERNELS[name]
    clean = ~np.isnan(x).any(axis=1)
    for variant in (long_rows.serial, long_rows.parallel, K.ALL_KERNELS[rows].numba):
        got = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        want = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        returned, expected = variant(*got), long_rows.numpy(*want)
        if expected is not None:  # the mean loss: NaN, as the NaN rows make it
            np.testing.assert_allclose(returned, expected, **tolerance(dtype))
        assert np.isnan(got[result][~clean]).all()
        for index, (g, w) in enumerate(zip(got, want)):
            if isinstance(g, np.ndarray) and g.dtype.kind == "f":
                np.testing.assert_allclose(g[clean], w[clean], **tolerance(dtype),
                                           err_msg=f"argument {index}")


def test_log_softmax_takes_the_long_row_kernel_for_long_rows_at_parallel_sizes():
    """log_softmax_update_output runs its own variants below LONG_ROW columns or below its
    parallel threshold, and the long-row kernel otherwise (cross-entropy's labels forward
    takes its own the same way: kernel(long_rows=...))."""
    from unittest import mock

    from nnjit.kernels._config import LONG_ROW, PARALLEL_MIN_EXP
    calls = []

    def record(parallel_variant, serial_variant, args):
        calls.append(parallel_variant)
        return parallel_variant(*args)

    rows = PARALLEL_MIN_EXP // LONG_ROW
    with mock.patch.object(K._jit.PARALLEL_GUARD, "run", side_effect=record):
        for shape in [(rows, LONG_ROW), (rows + 1, LONG_ROW - 1), (rows - 1, LONG_ROW)]:
            x = np.zeros(shape, np.float32)
            out = np.empty_like(x)
            K.log_softmax_update_output(x, out)
            np.testing.assert_allclose(out, -np.log(np.float32(shape[1])), rtol=1e-6)
    assert calls == [K.log_softmax_long_rows_update_output.parallel,
                     K.log_softmax_update_output.parallel]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("variant", ["serial", "parallel"])
def test_one_nan_makes_its_whole_row_nan_in_the_row_normalizing_kernels(dtype, variant):
    """The row maximum they shift by is unspecified for a row with NaN (kernels/_vmath.py);
    the results must not be: NaN over that row, wherever the NaN sits, other rows exact."""
    r = np.random.default_rng(5)
    n, c = 40, 1000
    x = _x(r, n, c, dtype)
    nan_at = {3: 0, 7: 1, 11: 17, 20: 500, 39: 999}
    for row, column in nan_at.items():
        x[row, column] = np.nan
    x[30, :] = np.nan
    nan_rows = sorted(nan_at) + [30]
    clean = np.setdiff1d(np.arange(n), nan_rows)
    labels = _labels(r, n, c)
    top, total = np.empty(n, dtype), np.empty(n)
    row_loss, grad = np.empty(n, dtype), np.empty((n, c), dtype)
    getattr(K.cross_entropy_labels_update_output, variant)(x, labels, row_loss, top, total)
    getattr(K.cross_entropy_labels_update_grad_input, variant)(x, labels, top, total, grad)
    results = {"cross_entropy rows": row_loss[:, None], "cross_entropy grad": grad}
    for name in ["softmax_update_output", "log_softmax_update_output",
                 "log_softmax_long_rows_update_output"]:
        results[name] = np.empty_like(x)
        getattr(K.ALL_KERNELS[name], variant)(x, results[name])
    reference = {"cross_entropy rows": np.empty(n, dtype)[:, None], "cross_entropy grad": np.empty_like(x),
                 "softmax_update_output": np.empty_like(x), "log_softmax_update_output": np.empty_like(x)}
    ref_top, ref_total = np.empty(n, dtype), np.empty(n)
    K.cross_entropy_labels_update_output.numpy(x, labels, reference["cross_entropy rows"][:, 0], ref_top, ref_total)
    K.cross_entropy_labels_update_grad_input.numpy(x, labels, ref_top, ref_total, reference["cross_entropy grad"])
    K.softmax_update_output.numpy(x, reference["softmax_update_output"])
    K.log_softmax_update_output.numpy(x, reference["log_softmax_update_output"])
    reference["log_softmax_long_rows_update_output"] = reference["log_softmax_update_output"]
    for name, result in results.items():
        assert np.isnan(result[nan_rows]).all(), name
        np.testing.assert_allclose(result[clean], reference[name][clean], **tolerance(dtype), err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("variant", ["serial", "parallel"])
@pytest.mark.parametrize("c", [1, 10, 127, 128, 1000])
def test_cross_entropy_counts_every_entry_equal_to_the_row_maximum(dtype, variant, c):
    """The float32 forward counts the entries equal to the maximum apart from the sum of the
    rest (kernels/nll.py): rows with one, two, three or all entries at the maximum, a maximum
    of 0 and of 1e4, must have the loss and statistics of the float64 reference."""
    r = np.random.default_rng(8)
    n = 64
    x = (r.standard_normal((n, c)) * 2).astype(dtype)
    for row in range(n):
        top = x[row].max() if row % 3 else dtype(0 if row % 2 else 1e4)
        ties = [1, 2, 3, c][row % 4]
        x[row, r.choice(c, size=min(ties, c), replace=False)] = top
        x[row] = np.minimum(x[row], top)
    labels = r.integers(0, c, n)
    labels[::5] = x[::5].argmax(axis=1)  # the confident case: the loss is log(total) alone
    row_loss, top, total = np.empty(n, dtype), np.empty(n, dtype), np.empty(n)
    getattr(K.cross_entropy_labels_update_output, variant)(x, labels, row_loss, top, total)
    exact = x.astype(np.longdouble)
    expected_total = np.exp(exact - exact.max(axis=1, keepdims=True)).sum(axis=1)
    expected_loss = np.log(expected_total) + exact.max(axis=1) - exact[np.arange(n), labels]
    assert (top == x.max(axis=1)).all()
    np.testing.assert_allclose(total, expected_total.astype(np.float64), rtol=8 * np.finfo(dtype).eps)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(row_loss, expected_loss.astype(dtype), rtol=4 * eps, atol=4 * eps * float(np.log(c) + 1))


def test_numpy_twins_never_run_numba_code(monkeypatch):
    """A twin calling another Kernel would follow the backend in force (numba by default)."""
    def refuse(*args):
        raise AssertionError("a NumPy twin called a Numba kernel")
    for kernel in K.ALL_KERNELS.values():
        monkeypatch.setattr(kernel, "numba", refuse)
    for name, make_args in ARGS.items():
        for dtype in DTYPES:
            K.ALL_KERNELS[name].numpy(*make_args(np.random.default_rng(1), 6, 5, dtype))


def test_numpy_twins_compile_no_numba_code():
    """In a fresh process, running every twin leaves every Numba function of the kernels
    uncompiled: the NumPy path needs no Numba, not even a jitted helper."""
    import os
    import subprocess
    import sys
    code = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
import numba
import numpy as np
import nnjit.kernels as K
from nnjit.kernels import _jit, _vmath, activations, batchnorm, dropout, linear, mse, nll, optim, softmax
import test_kernels as T
for name, make_args in T.ARGS.items():
    for dtype in T.DTYPES:
        K.ALL_KERNELS[name].numpy(*make_args(np.random.default_rng(1), 6, 5, dtype))
compiled = [module.__name__ + "." + attr
            for module in (_jit, _vmath, activations, batchnorm, dropout, linear, mse, nll, optim, softmax)
            for attr, value in vars(module).items()
            if isinstance(value, numba.core.registry.CPUDispatcher) and value.signatures]
compiled += [kernel.name + "." + variant for kernel in K.ALL_KERNELS.values()
             for variant in ("serial", "parallel")
             if getattr(kernel, variant, None) is not None and getattr(kernel, variant).signatures]
print(compiled)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["nll_prob_labels_update_output", "nll_prob_labels_update_grad_input",
                                  "nll_prob_update_output", "nll_prob_update_grad_input"])
def test_probability_kernels_flag_rows_with_negative_input(name, dtype):
    """The probability form's kernels flag rows with a negative input in their own pass
    (forward: NaN row loss, backward: a count), identically on every path; -0.0 and NaN are
    not negative. Rows of 10 columns too: the labels forward scans a task's rows as one."""
    kernel = K.ALL_KERNELS[name]
    for n, c in [(5, 13), (301, 257), (301, 10)]:
        args = ARGS[name](np.random.default_rng(4), n, c, dtype)
        x = args[0]
        x[1, 0], x[3, c - 1], x[4, 2] = -0.25, -1e-30, -0.0
        if n > 100:
            x[200, c // 2] = np.nan
            x[300, :] = -1
        for variant in [kernel.serial, kernel.parallel]:
            _check_against_twin(variant, kernel.numpy, args, dtype)
        result = kernel.numba(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
        if name.endswith("grad_input"):
            assert result == (3 if n > 100 else 2)
        else:
            kernel.numba(*args)
            rows = args[2]  # row_loss
            flagged = {1, 3, 300} if n > 100 else {1, 3}
            # row 200's loss is NaN too where its NaN input enters the loss (not a flag)
            assert flagged <= set(np.flatnonzero(np.isnan(rows))) <= flagged | {200}


LABELS_KERNELS = ["nll_prob_labels_update_output", "nll_prob_labels_update_grad_input",
                  "nll_log_labels_update_output", "nll_log_labels_update_grad_input",
                  "cross_entropy_labels_update_output", "cross_entropy_labels_update_grad_input"]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", LABELS_KERNELS)
def test_labels_kernels_flag_labels_out_of_range(name, dtype):
    """Labels kernels check each label as they read it: a row with a label outside [0, c)
    reads and writes nothing at it (forward: a NaN row loss, backward: counted in the
    result, its row without the label's term), identically on every path."""
    kernel = K.ALL_KERNELS[name]
    for n, c in [(6, 13), (301, 257)]:
        args = ARGS[name](np.random.default_rng(5), n, c, dtype)
        labels = args[1]
        bad_rows = [1, 4] if n < 100 else [1, 4, 150, 300]
        labels[bad_rows] = [c, -1] if n < 100 else [c, -1, 2**40, -2**62]
        for variant in [kernel.serial, kernel.parallel]:
            _check_against_twin(variant, kernel.numpy, args, dtype)
        numba_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        result = kernel.numba(*numba_args)
        if name.endswith("grad_input"):
            assert result == len(bad_rows)
            if not name.startswith("cross_entropy"):
                assert not numba_args[2][bad_rows].any()
        else:
            row_loss = numba_args[2]
            assert set(np.flatnonzero(np.isnan(row_loss))) == set(bad_rows)
            assert np.isnan(result)


@pytest.mark.parametrize("dtype, shape, parallel", [
    (np.float64, (4096, 1024), True), (np.float32, (4096, 1024), True),
    (np.float32, (4096, 768), False), (np.float64, (2048, 1024), False),
    (np.float64, (8192, 128), False), (np.float32, (64, 10), False)])
def test_nll_labels_forward_runs_parallel_only_where_the_rows_span_the_tlb(dtype, shape, parallel):
    """One element per row: worth two threads only for many labels over rows spanning 16 MB or
    more (kernels/nll.py _gather_work); either way the mean of the picked -log p."""
    from unittest import mock

    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    labels = rng.integers(0, shape[1], shape[0])
    launches = []

    def record(parallel_variant, serial_variant, args):
        launches.append(args)
        return parallel_variant(*args)

    with mock.patch.object(K._jit.PARALLEL_GUARD, "run", side_effect=record):
        loss = K.nll_log_labels_update_output(x, labels, np.empty(shape[0], dtype))
    assert bool(launches) == parallel
    np.testing.assert_allclose(loss, -x[np.arange(shape[0]), labels].astype(np.float64).mean(),
                               rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("c", [1, 63, 64, 65, 200])
def test_probability_nll_forward_finds_every_nonzero_target_whatever_its_block(c, dtype):
    """nll_prob_update_output takes np.log only in 64-entry blocks its scan finds non-zero
    targets in: one-hot, two-hot and NaN targets at and beside the block edges, all-zero rows."""
    r = np.random.default_rng(8)
    columns = sorted({0, 62, 63, 64, 65, 127, 128, c - 1} & set(range(c)))
    rows = [np.eye(c, dtype=dtype)[j] for j in columns]
    rows += [np.zeros(c, dtype)]
    for j in columns[1:]:
        two_hot = np.zeros(c, dtype)
        two_hot[[0, j]] = 0.5
        rows.append(two_hot)
        with_nan = np.zeros(c, dtype)
        with_nan[j] = np.nan
        rows.append(with_nan)
    target = np.stack(rows)
    n = target.shape[0]
    probabilities = _probabilities(r, n, c, dtype)
    args = [probabilities, target, np.empty(n, dtype), _eps(dtype), np.empty(n, dtype)]
    for variant in (K.nll_prob_update_output.serial, K.nll_prob_update_output.parallel):
        _check_against_twin(variant, K.nll_prob_update_output.numpy, args, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("c", [1, 7, 8, 9, 17, 31, 33, 64, 65, 100, 129, 1000])
def test_probability_nll_forward_with_soft_targets_against_a_longdouble_reference(c, dtype):
    """Every entry's log taken (vectorized): each row's loss within a few units of dtype's
    precision of -sum(t * log(clip(p))) in long double, whatever the width's vector tail, with
    probabilities of 0 and below eps (clipped), 1, and a NaN one. For eps of 0 (log 0 = -inf),
    subnormal, and above 1/2 (an empty clip interval) too: the kernel's general log, not the
    one for normal numbers."""
    r = np.random.default_rng(c)
    n = 6
    probabilities = _probabilities(r, n, c, dtype)
    probabilities[1, :: 3] = 0
    probabilities[2, 1::4] = 1e-30
    probabilities[3, -1] = 1
    probabilities[4, c // 2] = np.nan
    target = (r.random((n, c)) + 0.01).astype(dtype)
    # row 5: a soft first block (the kernel then takes the row's logs in one loop), then zero
    # targets where the probability is 0, whose terms must stay 0 when eps is 0 (log 0 = -inf)
    target[5, 64:] = 0
    probabilities[5, 64::2] = 0
    target /= target.sum(axis=1, keepdims=True)
    row_loss, mass = np.empty(n, dtype), np.empty(n, dtype)
    finite = np.arange(n) != 4
    for eps in (_eps(dtype), dtype(0), np.finfo(dtype).smallest_subnormal * 8, dtype(0.75)):
        for variant in (K.nll_prob_update_output.serial, K.nll_prob_update_output.parallel):
            variant(probabilities, target, row_loss, eps, mass)
            clipped = np.clip(probabilities, eps, 1 - eps).astype(np.longdouble)  # as kernels
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = target.astype(np.longdouble) * np.log(clipped)
            expected = -np.where(target != 0, terms, 0).sum(axis=1)
            assert np.isnan(row_loss[4])
            if eps == 0:
                assert row_loss[1] == np.inf
            rtol = (8 if dtype == np.float32 else 64) * np.finfo(dtype).eps
            np.testing.assert_allclose(row_loss[finite].astype(np.longdouble), expected[finite],
                                       rtol=rtol)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("c", [1, 10, 64, 65, 1000])
def test_probability_nll_one_hot_rows_give_the_labels_loss_bit_for_bit(c, dtype):
    """Both forms take the same log of the same clipped probability (a one-hot row of up to
    64 columns its one log alone, wider ones within a block's vectorized loop)."""
    r = np.random.default_rng(c)
    n = 40
    probabilities = _probabilities(r, n, c, dtype)
    probabilities[0, 0] = 0  # clipped to eps
    labels = r.integers(0, c, n)
    labels[0] = 0
    one_hot = np.eye(c, dtype=dtype)[labels]
    eps = _eps(dtype)
    for variant in ("serial", "parallel"):
        dense = getattr(K.nll_prob_update_output, variant)
        from_labels = getattr(K.nll_prob_labels_update_output, variant)
        dense_rows, label_rows = np.empty(n, dtype), np.empty(n, dtype)
        dense(probabilities, one_hot, dense_rows, eps, np.empty(n, dtype))
        from_labels(probabilities, labels, label_rows, eps)
        np.testing.assert_array_equal(dense_rows, label_rows)
