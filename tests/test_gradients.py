"""Central-difference checks (float64) of every module's input and parameter gradients and of
every criterion's gradient, on both backends, in training and evaluation mode."""
import numpy as np
import pytest

import nnjit
from conftest import numeric_gradient

BACKENDS = ["numba", "numpy"]
F64 = np.float64


def _away_from_zero(x):
    """Keep inputs off the kinks of ReLU-like functions, where differences are not gradients."""
    return np.where(np.abs(x) < 0.05, 0.3, x)


MODULES = {
    "Linear": (lambda: nnjit.Linear(6, 4, dtype=F64), (5, 6)),
    "SoftMax": (nnjit.SoftMax, (5, 7)),
    "LogSoftMax": (nnjit.LogSoftMax, (5, 7)),
    "BatchNormalization": (lambda: nnjit.BatchNormalization(alpha=0.3), (6, 5)),
    "ChannelwiseScaling": (lambda: nnjit.ChannelwiseScaling(5, dtype=F64), (4, 5)),
    "Dropout": (lambda: nnjit.Dropout(0.4), (5, 8)),
    "ReLU": (nnjit.ReLU, (4, 6)),
    "LeakyReLU": (lambda: nnjit.LeakyReLU(0.1), (4, 6)),
    "ELU": (lambda: nnjit.ELU(0.7), (4, 6)),
    "SoftPlus": (nnjit.SoftPlus, (4, 6)),
    "Flatten": (nnjit.Flatten, (3, 2, 4)),
    "Sequential": (lambda: nnjit.Sequential(
        nnjit.Linear(6, 8, dtype=F64), nnjit.BatchNormalization(0.5), nnjit.LeakyReLU(0.2),
        nnjit.Dropout(0.3), nnjit.ChannelwiseScaling(8, dtype=F64), nnjit.ELU(),
        nnjit.Linear(8, 5, dtype=F64), nnjit.LogSoftMax()), (7, 6)),
}


def _check_module(module, x, rng):
    # Dropout draws its seed from NumPy's global generator: reseeding repeats the mask.
    def forward():
        np.random.seed(99)
        return module.forward(x)

    grad_output = rng.standard_normal(forward().shape)
    module.zeroGradParameters()
    grad_input = module.backward(x, grad_output).copy()
    grads = [g.copy() for g in nnjit.optim._flatten(module.getGradParameters())]
    params = list(nnjit.optim._flatten(module.getParameters()))

    def loss():
        return float(np.sum(forward() * grad_output))

    np.testing.assert_allclose(grad_input, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)
    for param, grad in zip(params, grads):
        np.testing.assert_allclose(grad, numeric_gradient(loss, param), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["train", "evaluate"])
@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_gradients(name, mode, backend, rng):
    factory, shape = MODULES[name]
    module = factory()
    x = _away_from_zero(rng.standard_normal(shape) * 2)
    with nnjit.backend(backend):
        if mode == "evaluate":
            module.forward(x * 1.5 + 0.5)  # non-trivial moving statistics first
            module.evaluate()
        _check_module(module, x, rng)


def _one_hot(labels, classes):
    return np.eye(classes)[labels]


def _criterion_cases(rng):
    n, c = 6, 5
    labels = rng.integers(0, c, n)
    soft = rng.random((n, c))
    soft /= soft.sum(axis=1, keepdims=True)
    probs = rng.random((n, c)) * 0.8 + 0.1
    log_probs = np.log(probs)
    scores = rng.standard_normal((n, c)) * 3
    return {
        "MSECriterion": (nnjit.MSECriterion(), scores, rng.standard_normal((n, c))),
        "ClassNLLCriterion-labels": (nnjit.ClassNLLCriterion(), probs, labels),
        "ClassNLLCriterion-onehot": (nnjit.ClassNLLCriterion(), probs, _one_hot(labels, c)),
        "ClassNLLCriterionUnstable": (nnjit.ClassNLLCriterionUnstable(), probs, labels),
        "ClassNLLCriterion-log-labels": (nnjit.ClassNLLCriterion(log_input=True), log_probs, labels),
        "ClassNLLCriterion-log-soft": (nnjit.ClassNLLCriterion(log_input=True), log_probs, soft),
        "CrossEntropyCriterion-labels": (nnjit.CrossEntropyCriterion(), scores, labels),
        "CrossEntropyCriterion-soft": (nnjit.CrossEntropyCriterion(), scores, soft),
    }


CRITERIONS = sorted(_criterion_cases(np.random.default_rng(0)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", CRITERIONS)
def test_criterion_gradients(name, backend, rng):
    criterion, x, target = _criterion_cases(rng)[name]
    with nnjit.backend(backend):
        grad = criterion.backward(x, target).copy()
        numeric = numeric_gradient(lambda: float(criterion.forward(x, target)), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
