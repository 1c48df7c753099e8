"""Conv2d and MaxPool2d: against torch (both backends), the assignment's own checks, NumPy
twins, serial against parallel variants, pooling ties/NaN/-inf, gradients by central
differences, bad arguments, save/load."""
import numpy as np
import pytest

import nnjit
from conftest import numeric_gradient
from nnjit import kernels as K

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
DTYPES = [np.float32, np.float64]


def _conv_grads(conv, x, g, backend):
    with nnjit.backend(backend):
        conv.zeroGradParameters()
        out = conv.forward(x).copy()
        grad_input = conv.backward(x, g).copy()
    return out, grad_input, conv.gradW.copy(), conv.gradb.copy()


def _torch_conv(conv, x, g):
    import torch.nn.functional as F
    tx = torch.from_numpy(x).requires_grad_()
    tw = torch.from_numpy(conv.W.copy()).requires_grad_()
    tb = torch.from_numpy(conv.b.copy()).requires_grad_()
    out = F.conv2d(tx, tw, tb, stride=conv.stride, padding=conv.padding)
    out.backward(torch.from_numpy(g))
    return out.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


CONFIGS = [(cin, k, stride, pad) for cin in (1, 4) for k in (1, 3, 5, (3, 5))
           for stride in (1, 2) for pad in (0, 1, None)]


@needs_torch
@pytest.mark.torch
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_conv2d_matches_torch(backend, dtype):
    """Kernel 1, 3, 5, (3, 5); stride 1, 2; padding 0, 1, None ('same'); in=1 (direct path)
    and in=4 (columns and BLAS); non-square input; output and all three gradients."""
    rng = np.random.default_rng(0)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for cin, k, stride, pad in CONFIGS:
        np.random.seed(1)
        conv = nnjit.Conv2d(cin, 3, k, stride=stride, padding=pad, dtype=dtype)
        x = rng.standard_normal((2, cin, 7, 9)).astype(dtype)
        out = conv.forward(x)
        g = rng.standard_normal(out.shape).astype(dtype)
        ours = _conv_grads(conv, x, g, backend)
        theirs = _torch_conv(conv, x, g)
        for name, a, b in zip(("output", "gradInput", "gradW", "gradb"), ours, theirs):
            scale = max(1.0, np.abs(b).max())
            assert np.abs(a - b).max() <= tol * scale, (name, cin, k, stride, pad)


PATHS = ("small", "wide", "direct", "gemm")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_path_matches_the_numpy_twin(monkeypatch, path, dtype):
    """Each kernel path, forced, at every geometry it can take (the layer picks one by size,
    stride and receptive field): output and all three gradients against the NumPy twins, which
    test_conv2d_matches_torch checks against torch; batch 5 of non-square 11x13 images, with
    and without bias."""
    monkeypatch.setattr(nnjit.Conv2d, "_path", lambda self, out_shape: path)
    rng = np.random.default_rng(4)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    checked = 0
    for cin, k, stride, pad in CONFIGS:
        kh, kw = (k, k) if isinstance(k, int) else k
        np.random.seed(3)
        conv = nnjit.Conv2d(cin, 3, k, stride=stride, padding=pad, bias=checked % 2 == 0,
                            dtype=dtype)
        (ph, pw) = conv.padding
        if path == "wide" and (stride != 1 or ph >= kh or pw >= kw):
            continue  # geometries the layer never sends there
        x = rng.standard_normal((5, cin, 11, 13)).astype(dtype)
        g = rng.standard_normal(conv.forward(x).shape).astype(dtype)
        ours = _conv_grads(conv, x, g, "numba")
        twin = _conv_grads(conv, x, g, "numpy")
        for name, a, b in zip(("output", "gradInput", "gradW", "gradb"), ours, twin):
            assert a.dtype == dtype
            scale = max(1.0, np.abs(b).max())
            assert np.abs(a - b).max() <= tol * scale, (name, cin, k, stride, pad)
        checked += 1
    assert checked >= 16


def test_the_layer_picks_the_stride_1_kernels_where_they_apply():
    shape = (64, 16, 28, 28)
    assert nnjit.Conv2d(1, 16, 3)._path(shape) == "wide"
    assert nnjit.Conv2d(16, 16, 3)._path(shape) == "wide"
    assert nnjit.Conv2d(1, 16, 3, stride=2)._path((64, 16, 14, 14)) == "direct"
    assert nnjit.Conv2d(1, 16, 3, padding=3)._path((64, 16, 32, 32)) == "direct"  # pad >= k
    assert nnjit.Conv2d(32, 16, 3)._path(shape) == "gemm"
    assert nnjit.Conv2d(1, 2, 3)._path((2, 2, 8, 8)) == "small"


@needs_torch
@pytest.mark.torch
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_assignment_conv2d_check(backend):
    """The assignment's test: 100 trials of batch 2, 3 -> 4 channels, 5x6, k=3 (padding 1),
    input and gradOutput uniform in [-1, 1], float32, output and the three gradients compared
    with torch by np.allclose(atol=1e-6)."""
    rng = np.random.default_rng(7)
    for _ in range(100):
        conv = nnjit.Conv2d(3, 4, 3)
        x = rng.uniform(-1, 1, (2, 3, 5, 6)).astype(np.float32)
        g = rng.uniform(-1, 1, (2, 4, 5, 6)).astype(np.float32)
        ours = _conv_grads(conv, x, g, backend)
        theirs = _torch_conv(conv, x, g)
        for a, b in zip(ours, theirs):
            assert np.allclose(a, b, atol=1e-6)


@needs_torch
@pytest.mark.torch
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_batch_64_at_the_benchmark_shapes(backend):
    rng = np.random.default_rng(3)
    for cin, cout, side in ((1, 16, 28), (16, 32, 14)):
        conv = nnjit.Conv2d(cin, cout, 3)
        x = rng.standard_normal((64, cin, side, side)).astype(np.float32)
        g = rng.standard_normal((64, cout, side, side)).astype(np.float32)
        ours = _conv_grads(conv, x, g, backend)
        theirs = _torch_conv(conv, x, g)
        for a, b in zip(ours, theirs):
            assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def _pool_reference_indices(x, k, stride, pad):
    """torch's CPU rule written out: first maximum in row-major order, a NaN wins (the last
    NaN's index), an all -inf window gives its first position."""
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.empty((n, c, oh, ow), x.dtype)
    idx = np.empty((n, c, oh, ow), np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    r0, c0 = max(i * stride - pad, 0), max(j * stride - pad, 0)
                    r1, c1 = min(i * stride - pad + k, h), min(j * stride - pad + k, w)
                    best, where = -np.inf, r0 * w + c0
                    for r in range(r0, r1):
                        for col in range(c0, c1):
                            v = x[b, ch, r, col]
                            if v > best or np.isnan(v):
                                best, where = v, r * w + col
                    out[b, ch, i, j], idx[b, ch, i, j] = best, where
    return out, idx


@pytest.mark.parametrize("backend", nnjit.BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_max_pool_ties_nan_and_minus_inf(backend, dtype):
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 3, (2, 3, 7, 9)).astype(dtype)  # many ties
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 1, 2] = np.nan
    x[1, 2, :3, :3] = -np.inf
    for k, stride, pad in [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), (3, 3, 0)]:
        with nnjit.backend(backend):
            pool = nnjit.MaxPool2d(k, stride, pad)
            out = pool.forward(x)
            want_out, want_idx = _pool_reference_indices(x, k, stride, pad)
            np.testing.assert_array_equal(out, want_out)
            np.testing.assert_array_equal(pool.max_indices, want_idx)
            g = rng.standard_normal(out.shape).astype(dtype)
            grad = pool.backward(x, g)
            want = np.zeros(x.size, dtype)
            np.add.at(want, (np.arange(x.shape[0] * x.shape[1])[:, None] * x.shape[2] * x.shape[3]
                             + want_idx.reshape(x.shape[0] * x.shape[1], -1)).ravel(), g.ravel())
            np.testing.assert_allclose(grad.ravel(), want, rtol=1e-6)


@needs_torch
@pytest.mark.torch
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_max_pool_matches_torch(backend):
    import torch.nn.functional as F
    rng = np.random.default_rng(6)
    for _ in range(20):  # the assignment's check: MaxPool2d(2) on 2x3x4x6 in [-10, 10]
        x = rng.uniform(-10, 10, (2, 3, 4, 6)).astype(np.float32)
        with nnjit.backend(backend):
            pool = nnjit.MaxPool2d(2)
            out = pool.forward(x)
            g = rng.standard_normal(out.shape).astype(np.float32)
            grad = pool.backward(x, g)
        tx = torch.from_numpy(x).requires_grad_()
        tout = F.max_pool2d(tx, 2)
        tout.backward(torch.from_numpy(g))
        np.testing.assert_allclose(out, tout.detach().numpy(), atol=1e-6)
        np.testing.assert_allclose(grad, tx.grad.numpy(), atol=1e-6)
    x = rng.standard_normal((3, 4, 11, 8))
    x[0, 0, 0, :] = np.nan
    x[1, 1, :4, :4] = -np.inf
    for k, stride, pad in [(3, 2, 1), (2, 1, 1), (3, 3, 0)]:
        with nnjit.backend(backend):
            pool = nnjit.MaxPool2d(k, stride, pad)
            out = pool.forward(x)
        tout, tidx = F.max_pool2d(torch.from_numpy(x), k, stride, pad, return_indices=True)
        np.testing.assert_array_equal(out, tout.numpy())
        np.testing.assert_array_equal(pool.max_indices, tidx.numpy())


@pytest.mark.parametrize("name", ["conv2d_direct_update_output", "conv2d_direct_update_grad_input",
                                  "conv2d_direct_acc_grad_weight", "conv2d_acc_grad_bias",
                                  "conv2d_wide_update_output", "conv2d_wide_update_grad_input",
                                  "conv2d_wide_acc_grad_parameters",
                                  "max_pool2d_update_output", "max_pool2d_update_grad_input"])
def test_serial_and_parallel_variants_agree_with_the_twin(name):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 2, 9, 7))
    weight = rng.standard_normal((4, 2, 3, 3))
    geometry = (2, 1, 1, 1)
    out_shape = (3, 4, 5, 7)
    args = {
        "conv2d_direct_update_output": lambda: [x, weight, rng.standard_normal(4),
                                                np.empty(out_shape), *geometry],
        "conv2d_direct_update_grad_input": lambda: [rng.standard_normal(out_shape), weight,
                                                    np.empty(x.shape), *geometry],
        "conv2d_direct_acc_grad_weight": lambda: [x, rng.standard_normal(out_shape),
                                                  np.ones(weight.shape), *geometry],
        "conv2d_acc_grad_bias": lambda: [rng.standard_normal(out_shape), np.ones(4)],
        # stride 1, padding (1, 0): output (3, 4, 9, 5)
        "conv2d_wide_update_output": lambda: [x, weight, rng.standard_normal(4),
                                              np.empty((3, 4, 9, 5)), 1, 0,
                                              np.empty(K.wide_padded_size(3, 2, 9, 7, 1, 0))],
        "conv2d_wide_update_grad_input": lambda: [rng.standard_normal((3, 4, 9, 5)), weight,
                                                  np.empty(x.shape), 1, 0,
                                                  np.empty(K.wide_padded_size(3, 4, 9, 5, 1, 2))],
        "conv2d_wide_acc_grad_parameters": lambda: [
            x, rng.standard_normal((3, 4, 9, 5)), np.ones(weight.shape), np.ones(4), True, 1, 0,
            np.empty(K.wide_padded_size(3, 2, 9, 7, 1, 0))],
        "max_pool2d_update_output": lambda: [x, np.empty((3, 2, 4, 3)),
                                             np.empty((3, 2, 4, 3), np.int64), 3, 3, 2, 2, 1, 1],
        "max_pool2d_update_grad_input": lambda: [rng.standard_normal((3, 2, 4, 3)),
                                                 rng.integers(0, 63, (3, 2, 4, 3)),
                                                 np.empty(x.shape)],
    }[name]()
    kernel = K.ALL_KERNELS[name]
    results = []
    for variant in (kernel.serial, kernel.parallel, kernel.numpy):
        copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        variant(*copies)
        results.append(copies[:-1] if "wide" in name else copies)  # not the scratch buffer
    for other in results[1:]:
        for a, b in zip(results[0], other):
            if isinstance(a, np.ndarray):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cin", [1, 3])
def test_conv2d_gradients_by_central_differences(cin):
    rng = np.random.default_rng(9)
    np.random.seed(2)
    conv = nnjit.Conv2d(cin, 2, 3, stride=(1, 2), padding=1, dtype=np.float64)
    x = rng.standard_normal((2, cin, 5, 6))
    g = rng.standard_normal(conv.forward(x).shape)

    def loss():
        return float((conv.forward(x) * g).sum())
    conv.zeroGradParameters()
    conv.forward(x)
    grad_input = conv.backward(x, g).copy()
    grad_w, grad_b = conv.gradW.copy(), conv.gradb.copy()
    np.testing.assert_allclose(grad_input, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_w, numeric_gradient(loss, conv.W), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_b, numeric_gradient(loss, conv.b), rtol=1e-6, atol=1e-8)


def test_bad_arguments_and_input_name_the_layer():
    with pytest.raises(ValueError, match="Conv2d: kernel_size"):
        nnjit.Conv2d(3, 4, 0)
    with pytest.raises(ValueError, match="Conv2d: stride"):
        nnjit.Conv2d(3, 4, 3, stride=-1)
    with pytest.raises(ValueError, match="padding='same' needs an odd kernel"):
        nnjit.Conv2d(3, 4, 2, padding="same")
    with pytest.raises(ValueError, match="padding='same' needs an odd kernel and stride 1"):
        nnjit.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be"):
        nnjit.Conv2d(3, 4, 3, padding="full")
    conv = nnjit.Conv2d(3, 4, 5, padding=0)
    with pytest.raises(ValueError, match=r"Conv2d: input must be 4-D"):
        conv.forward(np.zeros((2, 3, 8), np.float32))
    with pytest.raises(ValueError, match="input has 2 channels, the layer takes 3"):
        conv.forward(np.zeros((2, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"kernel \(5\) is larger than the padded input"):
        conv.forward(np.zeros((2, 3, 4, 8), np.float32))
    with pytest.raises(TypeError, match="Conv2d"):
        conv.forward(np.zeros((2, 3, 8, 8), np.int64))
    with pytest.raises(ValueError, match="MaxPool2d: padding"):
        nnjit.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="MaxPool2d: kernel_size"):
        nnjit.MaxPool2d(0)
    with pytest.raises(ValueError, match=r"MaxPool2d: the kernel \(3\) is larger"):
        nnjit.MaxPool2d(3).forward(np.zeros((1, 1, 2, 5)))


def test_padding_forms_and_weights():
    assert nnjit.Conv2d(3, 4, 3).padding == (1, 1)
    assert nnjit.Conv2d(3, 4, (3, 5), padding="same").padding == (1, 2)
    assert nnjit.Conv2d(3, 4, 3, padding="valid").padding == (0, 0)
    assert nnjit.Conv2d(3, 4, 3, padding=(0, 2)).padding == (0, 2)
    conv = nnjit.Conv2d(3, 4, 3)
    assert conv.W.shape == (4, 3, 3, 3) and conv.W.dtype == np.float32
    assert np.abs(conv.W).max() <= 1 / np.sqrt(27)
    weights = np.ones((4, 3, 3, 3))
    conv.W = weights
    weights[0, 0, 0, 0] = 5
    assert conv.W[0, 0, 0, 0] == 1  # a checked copy
    with pytest.raises(ValueError):
        conv.W = np.ones((4, 3, 3))
    no_bias = nnjit.Conv2d(2, 2, 3, bias=False)
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32)
    out = no_bias.forward(x)
    no_bias.backward(x, np.ones_like(out))
    assert not no_bias.b.any() and not no_bias.gradb.any()


def test_cnn_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(10)
    np.random.seed(0)
    model = nnjit.Sequential(nnjit.Conv2d(1, 4, 3), nnjit.ReLU(), nnjit.MaxPool2d(2),
                             nnjit.Conv2d(4, 8, 3), nnjit.ReLU(), nnjit.MaxPool2d(2),
                             nnjit.Flatten(), nnjit.Linear(8 * 2 * 2, 3), nnjit.LogSoftMax())
    criterion = nnjit.ClassNLLCriterion(log_input=True)
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    x[np.arange(16), 0, y * 2, :] += 3  # learnable
    state, losses = {}, []
    config = {"learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    for _ in range(60):
        model.zeroGradParameters()
        out = model.forward(x)
        losses.append(criterion.forward(out, y))
        model.backward(x, criterion.backward(out, y))
        nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), config, state)
    assert losses[-1] < 0.3 * losses[0]
    path = tmp_path / "cnn.npz"
    nnjit.save(path, model, state)
    np.random.seed(1)
    fresh = nnjit.Sequential(nnjit.Conv2d(1, 4, 3), nnjit.ReLU(), nnjit.MaxPool2d(2),
                             nnjit.Conv2d(4, 8, 3), nnjit.ReLU(), nnjit.MaxPool2d(2),
                             nnjit.Flatten(), nnjit.Linear(8 * 2 * 2, 3), nnjit.LogSoftMax())
    nnjit.load(path, fresh)
    model.evaluate(), fresh.evaluate()
    np.testing.assert_array_equal(fresh.forward(x), model.forward(x))


def test_threads_get_their_own_outputs():
    import threading
    rng = np.random.default_rng(11)
    model = nnjit.Sequential(nnjit.Conv2d(2, 3, 3), nnjit.MaxPool2d(2))
    inputs = [rng.standard_normal((4, 2, 8, 8)).astype(np.float32) for _ in range(4)]
    expected = [model.forward(x).copy() for x in inputs]
    failures = []

    def run(k):
        for _ in range(50):
            if not np.array_equal(model.forward(inputs[k]), expected[k]):
                failures.append(k)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


@needs_torch
@pytest.mark.torch
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_avg_pool_matches_torch(backend, dtype):
    import torch.nn.functional as F
    rng = np.random.default_rng(12)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for k, stride, pad in [(2, None, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (1, 2), (1, 1))]:
        x = rng.standard_normal((3, 4, 9, 7)).astype(dtype)
        with nnjit.backend(backend):
            pool = nnjit.AvgPool2d(k, stride, pad)
            out = pool.forward(x)
            g = rng.standard_normal(out.shape).astype(dtype)
            grad = pool.backward(x, g)
        tx = torch.from_numpy(x).requires_grad_()
        tout = F.avg_pool2d(tx, k, stride, pad)
        tout.backward(torch.from_numpy(g))
        assert np.abs(out - tout.detach().numpy()).max() <= tol
        assert np.abs(grad - tx.grad.numpy()).max() <= tol


def test_avg_pool_gradient_by_central_differences_and_bad_arguments():
    rng = np.random.default_rng(13)
    pool = nnjit.AvgPool2d(3, 2, 1)
    x = rng.standard_normal((2, 2, 5, 6))
    g = rng.standard_normal(pool.forward(x).shape)
    grad = pool.backward(x, g).copy()
    np.testing.assert_allclose(grad, numeric_gradient(lambda: float((pool.forward(x) * g).sum()), x),
                               rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="AvgPool2d: padding"):
        nnjit.AvgPool2d(2, padding=2)
    with pytest.raises(ValueError, match="AvgPool2d: input must be 4-D"):
        nnjit.AvgPool2d(2).forward(np.zeros((2, 4)))


def _gemm_conv(dtype, seed=0):
    """A layer and input on the columns-and-BLAS path, in several chunks (153 x 784 columns a
    picture)."""
    np.random.seed(seed)
    conv = nnjit.Conv2d(17, 6, 3, dtype=dtype)
    x = np.random.default_rng(seed).standard_normal((64, 17, 28, 28)).astype(dtype)
    out_shape = (64, 6, 28, 28)
    assert conv._path(out_shape) == "gemm"
    return conv, x, np.random.default_rng(seed + 1).standard_normal(out_shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_backward_reuses_forwards_columns_only_for_the_same_input(dtype):
    conv, x, g = _gemm_conv(dtype)
    conv.forward(x)
    chunk = K.chunk_images(153, 784, np.dtype(dtype).itemsize)  # 2 pictures (float32), 1
    assert conv._kept_columns is not None and conv._kept_columns.shape[0] == 64 // chunk > 1
    kept = conv.backward(x, g).copy(), conv.gradW.copy()
    conv.zeroGradParameters()
    conv.forward(x)
    recomputed = conv.backward(x.copy(), g).copy(), conv.gradW.copy()  # another object
    with nnjit.backend("numpy"):
        conv.zeroGradParameters()
        conv.forward(x)
        twin = conv.backward(x, g).copy(), conv.gradW.copy()
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(kept[1], recomputed[1])  # the same columns, the same GEMMs
    np.testing.assert_allclose(kept[1], twin[1], **tol)
    np.testing.assert_array_equal(kept[0], recomputed[0])
    # forward of another input in between: backward of the first recomputes its columns
    other = x[::-1].copy()
    conv.zeroGradParameters()
    conv.forward(x)
    conv.forward(other)
    conv.backward(x, g)
    np.testing.assert_array_equal(conv.gradW, recomputed[1])


def test_columns_are_not_kept_in_evaluation_or_beyond_the_memory_cap(monkeypatch):
    conv, x, g = _gemm_conv(np.float32)
    conv.evaluate()
    conv.forward(x)
    assert conv._kept_columns is None
    conv.train()
    monkeypatch.setattr(nnjit.Conv2d, "KEEP_COLUMNS_MAX_BYTES", 1 << 20)
    conv.forward(x)
    assert conv._kept_columns is None
    conv.backward(x, g)
    reference, _, _ = _gemm_conv(np.float32)
    with nnjit.backend("numpy"):
        reference.forward(x)
        reference.backward(x, g)
    np.testing.assert_allclose(conv.gradW, reference.gradW, rtol=2e-4, atol=2e-4)


def test_conv_kernels_go_parallel_when_the_input_or_the_output_is_large(monkeypatch):
    """A 1-channel side is small while the pass is not (L1's input gradient: 50,176 elements
    of a 7.7M multiply-add pass): the kernels size themselves by the larger of the two."""
    from nnjit.kernels import _jit
    launches = []

    class Recorder:
        def run(self, parallel, serial, args):
            launches.append(len(args))
            return serial(*args)
    monkeypatch.setattr(_jit, "PARALLEL_GUARD", Recorder())
    weight = np.ones((16, 1, 3, 3), np.float32)
    for n, expected in ((64, 1), (2, 0)):
        grad_output = np.ones((n, 16, 28, 28), np.float32)
        grad_input = np.empty((n, 1, 28, 28), np.float32)
        padded = np.empty(K.wide_padded_size(n, 16, 28, 28, 1, 1), np.float32)
        launches.clear()
        K.conv2d_wide_update_grad_input(grad_output, weight, grad_input, 1, 1, padded)
        assert len(launches) == expected, n
        np.testing.assert_array_equal(grad_input[:, :, 1:-1, 1:-1], 16 * 9)
        launches.clear()
        output = np.empty((n, 1, 28, 28), np.float32)
        K.conv2d_wide_update_output(grad_output, weight.transpose(1, 0, 2, 3).copy(),
                                    np.zeros(1, np.float32), output, 1, 1, padded)
        assert len(launches) == expected, n
