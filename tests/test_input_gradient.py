"""input_gradient = False: backward accumulates exactly the parameter gradients of a full
backward, computes no gradient with respect to the input, and leaves no stale gradInput."""
import numpy as np
import pytest

import nnjit
from conftest import flat_arrays


def _mlp(dtype):
    return nnjit.Sequential(nnjit.Dropout(0.0), nnjit.Linear(6, 5, dtype=dtype), nnjit.LeakyReLU(),
                            nnjit.Linear(5, 3, dtype=dtype), nnjit.LogSoftMax())


def _batchnorm_first(dtype):
    return nnjit.Sequential(nnjit.BatchNormalization(0.9), nnjit.ChannelwiseScaling(6, dtype=dtype),
                            nnjit.Linear(6, 3, dtype=dtype), nnjit.LogSoftMax())


def _nested(dtype):
    return nnjit.Sequential(nnjit.Sequential(nnjit.Flatten(), nnjit.Linear(6, 4, dtype=dtype)),
                            nnjit.ReLU(), nnjit.Linear(4, 3, dtype=dtype), nnjit.LogSoftMax())


def _cnn(dtype):
    return nnjit.Sequential(nnjit.ReLU(), nnjit.Conv2d(1, 2, 3, dtype=dtype), nnjit.MaxPool2d(2),
                            nnjit.Flatten(), nnjit.Linear(2 * 3 * 3, 3, dtype=dtype),
                            nnjit.LogSoftMax())


MODELS = {"mlp": (_mlp, (9, 6)), "batchnorm_first": (_batchnorm_first, (9, 6)),
          "nested": (_nested, (9, 6)), "cnn": (_cnn, (9, 1, 6, 6))}


def _twins(make, dtype):
    """Two models of the same architecture and the same weights."""
    a, b = make(dtype), make(dtype)
    for x, y in zip(flat_arrays(a.getParameters()), flat_arrays(b.getParameters())):
        y[...] = x
    return a, b


@pytest.mark.parametrize("backend", nnjit.BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_gradients_are_those_of_a_full_backward(name, dtype, backend, rng):
    make, shape = MODELS[name]
    full, data_only = _twins(make, dtype)
    data_only.input_gradient = False
    x, labels = rng.standard_normal(shape).astype(dtype), rng.integers(0, 3, shape[0])
    criterion = nnjit.ClassNLLCriterion(log_input=True)
    with nnjit.backend(backend):
        for model in (full, data_only):
            model.zeroGradParameters()
            for _ in range(2):  # twice: gradients accumulate the same way
                output = model.forward(x)
                returned = model.backward(x, criterion.backward(output, labels))
        assert returned is None and data_only.gradInput is None
        assert full.gradInput.shape == x.shape
    grads = list(zip(flat_arrays(full.getGradParameters()),
                     flat_arrays(data_only.getGradParameters())))
    assert grads and all(np.array_equal(g, h) for g, h in grads)
    first = next(m for m in data_only.modules if m._has_parameters())
    assert first.gradInput is None  # nor stale arrays in the children it skipped
    assert all(m.gradInput is None for m in data_only.modules[:data_only.modules.index(first)])


def test_a_single_layer_and_a_model_without_parameters(rng):
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    full, data_only = nnjit.Linear(3, 2, dtype=np.float64), nnjit.Linear(3, 2, dtype=np.float64)
    data_only.W[...], data_only.b[...] = full.W, full.b
    data_only.input_gradient = False
    for layer in (full, data_only):
        layer.zeroGradParameters()
        layer.forward(x)
    assert full.backward(x, g).shape == x.shape and data_only.backward(x, g) is None
    assert np.array_equal(full.gradW, data_only.gradW)
    assert np.array_equal(full.gradb, data_only.gradb)

    plain = nnjit.Sequential(nnjit.ReLU(), nnjit.SoftMax())
    plain.forward(x)
    plain.backward(x, np.ones_like(x))
    plain.input_gradient = False
    assert plain.backward(x, np.ones_like(x)) is None
    assert all(m.gradInput is None for m in plain.modules)


def test_first_child_may_opt_out_but_a_later_one_may_not(rng):
    x, labels = rng.standard_normal((5, 6)), rng.integers(0, 3, 5)
    model = _mlp(np.float64)
    criterion = nnjit.ClassNLLCriterion(log_input=True)
    model[0].input_gradient = False
    output = model.forward(x)
    assert model.backward(x, criterion.backward(output, labels)) is None
    model[0].input_gradient = True
    model[3].input_gradient = False
    with pytest.raises(ValueError, match=r"module 3 \(Linear\(5 -> 3\)\) has input_gradient False"):
        model.backward(x, criterion.backward(output, labels))
