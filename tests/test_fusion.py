"""Sequential runs a LeakyReLU then a training Dropout as one pass each way: it must give what
the two modules give called in turn, bit for bit, and leave each module as that would."""
import copy

import numpy as np
import pytest

import nnjit
import nnjit.kernels as K
from conftest import DTYPES

BACKENDS = ["numba", "numpy"]
# a small batch, a batch as the asv MLP runs it, one above the parallel thresholds
SHAPES = [(3, 5), (128, 256), (300, 700)]


def _model(n_in, width, dtype, seed=4):
    """The same model for the same arguments: the layers' initial weights from a seeded global
    generator, whose state is put back afterwards (later tests draw from it)."""
    global_state = np.random.get_state()
    np.random.seed(seed)
    try:
        model = _layers(n_in, width, dtype, seed)
    finally:
        np.random.set_state(global_state)
    first = model.modules[0]
    first.W[:2], first.b[:2] = 0, 0  # LeakyReLU's input exactly 0 there: its gradient's switch
    return model


def _layers(n_in, width, dtype, seed):
    return nnjit.Sequential(nnjit.Linear(n_in, width, dtype=dtype), nnjit.LeakyReLU(0.07),
                            nnjit.Dropout(0.4, seed=seed), nnjit.Linear(width, 6, dtype=dtype),
                            nnjit.LeakyReLU(0.2), nnjit.Dropout(0.25, seed=seed + 1),
                            nnjit.Linear(6, 3, dtype=dtype))


def _in_turn(model, x, grad_output, input_gradient=True):
    """forward and backward of model's children called one at a time."""
    outputs = [x]
    for module in model.modules:
        outputs.append(module.forward(outputs[-1]))
    grad = grad_output
    for index in range(len(model.modules) - 1, -1, -1):
        module = model.modules[index]
        if index == 0 and not input_gradient:
            module._acc_parameters_only(outputs[0], grad)
        else:
            grad = module.backward(outputs[index], grad)
    return outputs[-1]


@pytest.fixture
def count_fused(monkeypatch):
    """Counts the calls of the two fused kernels: the tests prove the path they test ran."""
    counts = {"forward": 0, "backward": 0}
    for direction, name in (("forward", "leaky_relu_dropout_update_output"),
                            ("backward", "leaky_relu_dropout_update_grad_input")):
        kernel = getattr(K, name)

        def counted(*args, kernel=kernel, direction=direction):
            counts[direction] += 1
            return kernel(*args)
        monkeypatch.setattr(K, name, counted)
    return counts


def _assert_same_state(fused, in_turn):
    for index, (a, b) in enumerate(zip(fused.modules, in_turn.modules)):
        for name in ("output", "gradInput"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name),
                                          err_msg=f"module {index} {name}")
        for got, want in zip(a.getGradParameters(), b.getGradParameters()):
            np.testing.assert_array_equal(got, want, err_msg=f"module {index} gradients")
        if isinstance(a, nnjit.Dropout):
            np.testing.assert_array_equal(a.mask, b.mask)
            assert a._mask_shape == b._mask_shape


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_the_fused_pairs_give_what_the_modules_give_in_turn(shape, dtype, backend, count_fused):
    n, width = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 11)).astype(dtype)
    grad_output = rng.standard_normal((n, 3)).astype(dtype)
    fused, in_turn = _model(11, width, dtype), _model(11, width, dtype)
    with nnjit.backend(backend):
        for _ in range(2):  # twice: the second call reuses the buffers and draws new masks
            for model in (fused, in_turn):
                model.zeroGradParameters()
            np.testing.assert_array_equal(fused.forward(x), _in_turn(in_turn, x, grad_output))
            fused.backward(x, grad_output)
            _assert_same_state(fused, in_turn)
    assert count_fused == {"forward": 4, "backward": 4}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_fused_through_updategradinput_and_without_the_input_gradient(dtype, count_fused):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 11)).astype(dtype)
    grad_output = rng.standard_normal((7, 3)).astype(dtype)
    fused, in_turn = _model(11, 9, dtype), _model(11, 9, dtype)
    fused.forward(x)
    _in_turn(in_turn, x, grad_output)
    fused.updateGradInput(x, grad_output)  # Torch7's split backward
    fused.accGradParameters(x, grad_output)
    _assert_same_state(fused, in_turn)

    fused, in_turn = _model(11, 9, dtype), _model(11, 9, dtype)
    fused.input_gradient = False
    fused.forward(x)
    assert fused.backward(x, grad_output) is None
    _in_turn(in_turn, x, grad_output, input_gradient=False)
    for a, b in zip(fused.modules[1:], in_turn.modules[1:]):
        np.testing.assert_array_equal(a.gradInput, b.gradInput)
    for got, want in zip(fused.getGradParameters(), in_turn.getGradParameters()):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    assert count_fused == {"forward": 4, "backward": 4}


def test_a_sequential_that_starts_with_the_pair(count_fused):
    """The pair's input is then the Sequential's: also a view, or an array the caller reuses."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((10, 40))
    data[:, :6] = 0
    x = data[2:8]  # a view, C-contiguous
    grad_output = rng.standard_normal((6, 40))
    fused = nnjit.Sequential(nnjit.LeakyReLU(), nnjit.Dropout(0.5, seed=9))
    in_turn = nnjit.Sequential(nnjit.LeakyReLU(), nnjit.Dropout(0.5, seed=9))
    np.testing.assert_array_equal(fused.forward(x), _in_turn(in_turn, x, grad_output))
    fused.backward(x, grad_output)
    _assert_same_state(fused, in_turn)
    assert count_fused == {"forward": 1, "backward": 1}
    # strided input: the modules in turn (LeakyReLU copies it to C order)
    strided = data[:, ::2]
    np.testing.assert_array_equal(fused.forward(strided),
                                  _in_turn(in_turn, strided, rng.standard_normal((10, 20))))
    assert count_fused["forward"] == 1


class _CountingDropout(nnjit.Dropout):
    pass


def _taken_apart(kind):
    leaky, dropout = nnjit.LeakyReLU(), nnjit.Dropout(0.5, seed=2)
    if kind == "subclass":
        dropout = _CountingDropout(0.5, seed=2)
    elif kind == "instance forward":
        plain_forward = leaky.forward
        leaky.forward = lambda x: plain_forward(x)
    elif kind == "evaluation":
        dropout.evaluate()
    elif kind == "ReLU":
        leaky = nnjit.ReLU()
    elif kind == "slope set to a numpy float":
        leaky.slope = np.float32(0.03)
    return nnjit.Sequential(leaky, dropout)


@pytest.mark.parametrize("kind", ["subclass", "instance forward", "evaluation", "ReLU",
                                  "slope set to a numpy float"])
def test_what_is_not_the_plain_pair_runs_module_by_module(kind, count_fused):
    x = np.random.default_rng(4).standard_normal((5, 8))
    model, reference = _taken_apart(kind), _taken_apart(kind)
    out = model.forward(x).copy()
    grad = model.backward(x, np.ones_like(x)).copy()
    assert count_fused == {"forward": 0, "backward": 0}
    np.testing.assert_array_equal(out, reference.modules[1].forward(reference.modules[0].forward(x)))
    np.testing.assert_array_equal(
        grad, reference.modules[0].backward(x, reference.modules[1].backward(
            reference.modules[0].output, np.ones_like(x))))


def test_errors_name_the_module_that_refuses(count_fused):
    model = nnjit.Sequential(nnjit.Linear(4, 4), nnjit.LeakyReLU(), nnjit.Dropout(0.5))
    x = np.ones((2, 4), np.float32)
    model.modules[2].p = 1.5
    with pytest.raises(ValueError, match=r"in module 2 \(Dropout\(1.5\)\) of Sequential: "
                                         r"Dropout: p must be in \[0, 1\]"):
        model.forward(x)
    model.modules[2].p = 0.5
    model.modules[1].slope = "steep"
    with pytest.raises(TypeError, match=r"in module 1 \(LeakyReLU\('steep'\)\) of Sequential: "
                                        r"LeakyReLU: slope must be a number"):
        model.forward(x)
    model.modules[1].slope = 0.03
    model.forward(x)
    with pytest.raises(ValueError, match=r"in module 2 .*gradOutput"):
        model.backward(x, np.ones((2, 5), np.float32))
    model.modules[2].p = float("nan")
    with pytest.raises(ValueError, match=r"in module 2 .*p must be in"):
        model.backward(x, np.ones((2, 4), np.float32))
    assert count_fused == {"forward": 1, "backward": 0}


def test_copies_and_unpickled_input_run_the_pair_fused_too(count_fused):
    """Deep copies (nnjit.warmup's, and so ``python -m nnjit compile``'s: the fused kernels
    must compile there), unpickled models, and input whose dtype object was unpickled: equal
    to NumPy's float32, not the same object."""
    import pickle
    x = np.random.default_rng(5).standard_normal((4, 6)).astype(np.float32)
    unpickled_x = pickle.loads(pickle.dumps(x))
    assert unpickled_x.dtype is not x.dtype
    model = _model(6, 5, np.float32)
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        copied.backward(x, np.ones_like(copied.forward(x)))
    pair = nnjit.Sequential(nnjit.LeakyReLU(), nnjit.Dropout(0.5, seed=3))
    reference = nnjit.Sequential(nnjit.LeakyReLU(), nnjit.Dropout(0.5, seed=3))
    np.testing.assert_array_equal(pair.forward(unpickled_x), _in_turn(reference, x, x))
    pair.backward(unpickled_x, pickle.loads(pickle.dumps(x)))
    _assert_same_state(pair, reference)
    assert count_fused == {"forward": 5, "backward": 5}
