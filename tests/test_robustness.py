"""Processes, extreme numbers and long runs: nnjit neither crashes nor corrupts a result."""
import multiprocessing
import os
import resource

import numpy as np
import pytest

import nnjit
from nnjit import kernels as K

try:
    import torch
except ImportError:
    torch = None


# ---------------------------------------------------------------- processes
def _worker_result(seed):
    """A forward/backward/Adam step sequence, large enough for the parallel kernels."""
    rng = np.random.default_rng(seed)
    model = nnjit.Sequential(nnjit.Linear(64, 256, dtype=np.float64), nnjit.ReLU(),
                             nnjit.Linear(256, 10, dtype=np.float64), nnjit.LogSoftMax())
    for layer in (model[0], model[2]):
        layer.W = rng.standard_normal(layer.W.shape) * 0.1
        layer.b = np.zeros(layer.b.shape)
    criterion, state = nnjit.ClassNLLCriterion(log_input=True), {}
    config = {"learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    losses = []
    for _ in range(5):
        x, y = rng.standard_normal((1024, 64)), rng.integers(0, 10, 1024)
        model.zeroGradParameters()
        out = model.forward(x)
        losses.append(float(criterion.forward(out, y)))
        model.backward(x, criterion.backward(out, y))
        nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), config, state)
    return losses


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_after_the_parent_ran_kernels(method):
    expected = [_worker_result(seed) for seed in range(3)]  # the parent uses the kernels first
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        results = pool.map(_worker_result, range(3), chunksize=1)
    assert results == expected


# ---------------------------------------------------------------- extreme numbers
def _rows(dtype):
    x = np.array([[1e4, -1e4, 0.0, 3.0],
                  [-np.inf, 2.0, -np.inf, 1.0],
                  [-np.inf, -np.inf, -np.inf, -np.inf],
                  [-1e4, -1e4 + 1, -1e4 + 2, -1e4],
                  [1e4, 1e4, 1e4, 1e4]], dtype)
    return x


@pytest.mark.torch  # a part compares with torch, where installed
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_softmax_family_at_extreme_logits(dtype, backend):
    x = _rows(dtype)
    with nnjit.backend(backend):
        p = nnjit.SoftMax().forward(x)
        logp = nnjit.LogSoftMax().forward(x)
        losses = [float(nnjit.CrossEntropyCriterion().forward(x[i:i + 1], np.array([1])))
                  for i in range(len(x))]
        grad = nnjit.CrossEntropyCriterion().backward(x[:2], np.array([1, 1]))
    # finite and right where defined
    np.testing.assert_allclose(p[0], [1, 0, 0, 0], atol=0)
    np.testing.assert_allclose(p[1], [0, np.e / (np.e + 1), 0, 1 / (np.e + 1)], rtol=1e-6)
    np.testing.assert_allclose(p[3], np.exp([0, 1, 2, 0]) / np.exp([0, 1, 2, 0]).sum(), rtol=1e-6)
    np.testing.assert_allclose(p[4], 0.25, rtol=1e-6)
    assert logp[0, 1] == pytest.approx(-2e4, rel=1e-6) and logp[0, 0] == 0
    assert logp[1, 0] == -np.inf and np.isfinite(logp[1, [1, 3]]).all()
    assert losses[0] == pytest.approx(2e4, rel=1e-6) and losses[3] == pytest.approx(
        -np.log(np.e / (2 + np.e + np.e**2)), rel=1e-5)
    assert np.isfinite(grad).all()
    # a row of all -inf has no distribution: NaN, as in torch, never garbage
    assert np.isnan(p[2]).all() and np.isnan(logp[2]).all() and np.isnan(losses[2])
    if torch is not None:
        np.testing.assert_allclose(p, torch.softmax(torch.from_numpy(x), 1).numpy(), rtol=1e-6,
                                   atol=0)
        np.testing.assert_allclose(logp, torch.log_softmax(torch.from_numpy(x), 1).numpy(),
                                   rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_softplus_and_elu_at_plus_minus_1e4(dtype, backend):
    x = np.array([[-1e4, -100.0, -1e-8, 0.0, 1e-8, 100.0, 1e4]], dtype)
    with nnjit.backend(backend):
        softplus = nnjit.SoftPlus().forward(x)
        softplus_grad = nnjit.SoftPlus().backward(x, np.ones_like(x))
        elu = nnjit.ELU(1.0).forward(x)
        elu_grad = nnjit.ELU(1.0).backward(x, np.ones_like(x))
    np.testing.assert_allclose(softplus, np.logaddexp(0, x.astype(np.float64)), rtol=1e-6,
                               atol=4 * np.finfo(dtype).smallest_subnormal)  # subnormal steps
    assert softplus[0, 0] == 0 and softplus[0, -1] == 1e4
    np.testing.assert_allclose(softplus_grad, [[0, 3.72e-44, 0.5, 0.5, 0.5, 1, 1]], atol=1e-7)
    np.testing.assert_allclose(elu, [[-1, -1, -1e-8, 0, 1e-8, 100, 1e4]], rtol=1e-6)
    np.testing.assert_allclose(elu_grad, [[0, np.exp(-100.0), 1, 1, 1, 1, 1]], rtol=1e-6,
                               atol=1e-30)


@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_mse_overflow_in_float32_is_inf_not_wrapped(backend):
    x = np.full((2, 3), 3e38, np.float32)
    t = -x
    with nnjit.backend(backend), np.errstate(over="ignore"):
        loss = nnjit.MSECriterion().forward(x, t)
        grad = nnjit.MSECriterion().backward(x, t)
    assert loss == np.inf and loss.dtype == np.float32
    assert np.isinf(grad).all() and (grad > 0).all()


# ---------------------------------------------------------------- long runs
def _rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_ten_thousand_steps_keep_memory_flat():
    rng = np.random.default_rng(0)
    model = nnjit.Sequential(nnjit.Linear(32, 64), nnjit.BatchNormalization(0.9),
                             nnjit.ChannelwiseScaling(64), nnjit.LeakyReLU(), nnjit.Dropout(0.2),
                             nnjit.Linear(64, 10), nnjit.LogSoftMax())
    criterion, state = nnjit.ClassNLLCriterion(log_input=True), {}
    config = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    x = rng.standard_normal((64, 32)).astype(np.float32)
    y = rng.integers(0, 10, 64)

    def steps(count):
        for _ in range(count):
            model.zeroGradParameters()
            out = model.forward(x)
            loss = criterion.forward(out, y)
            model.backward(x, criterion.backward(out, y))
            nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), config, state)
        return loss

    steps(200)  # compile and settle
    before = _rss_bytes()
    loss = steps(10_000)
    growth = (_rss_bytes() - before) / before
    assert np.isfinite(loss) and all(np.isfinite(p).all() for layer in model.getParameters()
                                     for p in layer)
    assert growth < 0.01, f"RSS grew by {growth:.2%}"
