"""Each module and criterion against PyTorch's equivalent on the same arrays, both backends,
float32 and float64 (skipped where torch is not installed)."""
import numpy as np
import pytest

import nnjit
from conftest import DTYPES

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
nn = torch.nn

BACKENDS = ["numba", "numpy"]


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if np.dtype(dtype) == np.float32 else dict(rtol=1e-10, atol=1e-12)


def _t(array):
    return torch.tensor(array, requires_grad=True)


def _compare_module(module, torch_module, x, grad_output, dtype):
    x_t = _t(x)
    out_t = torch_module(x_t)
    out_t.backward(torch.tensor(grad_output))
    out = module.forward(x)
    grad = module.backward(x, grad_output)
    assert out.dtype == dtype and grad.dtype == dtype
    np.testing.assert_allclose(out, out_t.detach().numpy(), **_tol(dtype))
    np.testing.assert_allclose(grad, x_t.grad.numpy(), **_tol(dtype))


@pytest.fixture(params=[(4, 7), (256, 1000)], ids=["4x7", "256x1000"])
def shape(request):
    return request.param


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_linear_with_torch_weights(dtype, backend, shape, rng):
    n, n_in = shape
    torch_linear = nn.Linear(n_in, 9).to(torch.float64 if dtype == np.float64 else torch.float32)
    linear = nnjit.Linear(n_in, 9, dtype=dtype)
    linear.W = torch_linear.weight.detach().numpy()
    linear.b = torch_linear.bias.detach().numpy()
    x = rng.standard_normal(shape).astype(dtype)
    grad_output = rng.standard_normal((n, 9)).astype(dtype)
    with nnjit.backend(backend):
        _compare_module(linear, torch_linear, x, grad_output, dtype)
    np.testing.assert_allclose(linear.gradW, torch_linear.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(linear.gradb, torch_linear.bias.grad.numpy(), rtol=1e-4, atol=1e-4)


ELEMENTWISE = {
    "SoftMax": (nnjit.SoftMax, lambda: nn.Softmax(dim=1)),
    "LogSoftMax": (nnjit.LogSoftMax, lambda: nn.LogSoftmax(dim=1)),
    "ReLU": (nnjit.ReLU, nn.ReLU),
    "LeakyReLU": (lambda: nnjit.LeakyReLU(0.03), lambda: nn.LeakyReLU(0.03)),
    "ELU": (lambda: nnjit.ELU(0.8), lambda: nn.ELU(0.8)),
    # torch's default threshold=20 returns x (gradient 1) above 20, off by exp(-20); nnjit is
    # exact there, so compare with the threshold out of the inputs' range.
    "SoftPlus": (nnjit.SoftPlus, lambda: nn.Softplus(threshold=60)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_parameter_free_modules(name, dtype, backend, shape, rng):
    ours, theirs = ELEMENTWISE[name]
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    grad_output = rng.standard_normal(shape).astype(dtype)
    with nnjit.backend(backend):
        _compare_module(ours(), theirs(), x, grad_output, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_batch_normalization(dtype, backend, shape, rng):
    alpha = 0.7
    n, c = shape
    bn = nnjit.BatchNormalization(alpha)
    torch_bn = nn.BatchNorm1d(c, eps=bn.EPS, momentum=1 - alpha, affine=False)
    torch_bn = torch_bn.to(torch.float64 if dtype == np.float64 else torch.float32)
    with nnjit.backend(backend):
        for step in range(2):
            x = (rng.standard_normal(shape) * 3 + step).astype(dtype)
            grad_output = rng.standard_normal(shape).astype(dtype)
            _compare_module(bn, torch_bn, x, grad_output, dtype)
        np.testing.assert_allclose(bn.moving_mean, torch_bn.running_mean.numpy(), **_tol(dtype))
        # torch keeps the unbiased variance: after two steps moving = a^2 + (1-a)(a v1 + v2),
        # each v scaled by n/(n-1) in torch; undo that scaling to compare.
        unbiased_part = torch_bn.running_var.numpy() - alpha**2
        np.testing.assert_allclose(bn.moving_variance - alpha**2, unbiased_part * (n - 1) / n,
                                   rtol=1e-4 if dtype == np.float32 else 1e-10)
        bn.evaluate()
        torch_bn.eval()
        torch_bn.running_var.copy_(torch.tensor(bn.moving_variance))
        x = rng.standard_normal(shape).astype(dtype)
        _compare_module(bn, torch_bn, x, rng.standard_normal(shape).astype(dtype), dtype)


def _torch_loss(loss, x, target):
    x_t = _t(x)
    value = loss(x_t, target)
    value.backward()
    return value.item(), x_t.grad.numpy()


def _compare_criterion(criterion, x, target, torch_value, torch_grad, dtype):
    value = criterion.forward(x, target)
    grad = criterion.backward(x, target)
    assert np.asarray(value).dtype == dtype and grad.dtype == dtype
    np.testing.assert_allclose(value, torch_value, **_tol(dtype))
    np.testing.assert_allclose(grad, torch_grad, **_tol(dtype))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("target_kind", ["labels", "onehot"])
def test_nll_forms_and_cross_entropy(target_kind, dtype, backend, shape, rng):
    n, c = shape
    scores = (rng.standard_normal(shape) * 4).astype(dtype)
    labels = rng.integers(0, c, n)
    target = labels if target_kind == "labels" else np.eye(c, dtype=dtype)[labels]
    torch_target = torch.tensor(labels if target_kind == "labels" else target)
    log_probs = torch.log_softmax(torch.tensor(scores), dim=1).numpy()
    probs = np.exp(log_probs)
    nll = (lambda a, t: nn.NLLLoss()(a, t)) if target_kind == "labels" else (
        lambda a, t: -(a * t).sum() / n)
    with nnjit.backend(backend):
        _compare_criterion(nnjit.ClassNLLCriterion(log_input=True), log_probs, target,
                           *_torch_loss(nll, log_probs, torch_target), dtype)
        _compare_criterion(nnjit.CrossEntropyCriterion(), scores, target,
                           *_torch_loss(nn.CrossEntropyLoss(), scores, torch_target), dtype)
        # probability form: the same loss written on p, with the gradient -t / p / n
        value, _ = _torch_loss(nll, log_probs, torch_target)
        p_t = _t(probs)
        nll(torch.log(p_t), torch_target).backward()
        _compare_criterion(nnjit.ClassNLLCriterion(), probs, target, value,
                           p_t.grad.numpy(), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_mse(dtype, backend, shape, rng):
    x = rng.standard_normal(shape).astype(dtype)
    target = rng.standard_normal(shape).astype(dtype)
    mse = lambda a, t: nn.MSELoss(reduction="sum")(a, t) / shape[0]  # noqa: E731
    with nnjit.backend(backend):
        _compare_criterion(nnjit.MSECriterion(), x, target,
                           *_torch_loss(mse, x, torch.tensor(target)), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_step_matches_torch(backend, rng):
    """A whole Linear-LeakyReLU-Linear-LogSoftMax step with NLL and SGD momentum."""
    torch.manual_seed(0)
    t_model = nn.Sequential(nn.Linear(12, 16), nn.LeakyReLU(0.03), nn.Linear(16, 4),
                            nn.LogSoftmax(dim=1))
    model = nnjit.Sequential(nnjit.Linear(12, 16), nnjit.LeakyReLU(0.03), nnjit.Linear(16, 4),
                             nnjit.LogSoftMax())
    for ours, theirs in ((model[0], t_model[0]), (model[2], t_model[2])):
        ours.W, ours.b = theirs.weight.detach().numpy(), theirs.bias.detach().numpy()
    optimizer = torch.optim.SGD(t_model.parameters(), lr=0.1, momentum=0.9)
    criterion, state = nnjit.ClassNLLCriterion(log_input=True), {}
    config = {"learning_rate": 0.1, "momentum": 0.9}
    with nnjit.backend(backend):
        for _ in range(3):
            x = rng.standard_normal((8, 12)).astype(np.float32)
            y = rng.integers(0, 4, 8)
            optimizer.zero_grad()
            t_loss = nn.NLLLoss()(t_model(torch.tensor(x)), torch.tensor(y))
            t_loss.backward()
            optimizer.step()
            model.zeroGradParameters()
            loss = criterion.forward(model.forward(x), y)
            model.backward(x, criterion.backward(model.output, y))
            nnjit.sgd_momentum(model.getParameters(), model.getGradParameters(), config, state)
            np.testing.assert_allclose(loss, t_loss.item(), rtol=1e-5)
    # torch's SGD momentum buffer is momentum*buf + grad, scaled by lr at the step: the same
    # update as the assignment's acc = momentum*acc + lr*grad.
    np.testing.assert_allclose(model[0].W, t_model[0].weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model[2].b, t_model[2].bias.detach().numpy(), rtol=1e-5, atol=1e-6)
