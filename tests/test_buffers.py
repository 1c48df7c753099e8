"""Steady state allocates nothing: after the first batch, modules, criterions and optimizers
reuse their buffers (same array objects), and a whole training step allocates no array of
the batch's size."""
import tracemalloc

import numpy as np
import pytest

import nnjit

from conftest import DTYPES

LAYERS = {
    "Linear": lambda dtype: nnjit.Linear(30, 30, dtype=dtype),
    "SoftMax": lambda dtype: nnjit.SoftMax(),
    "LogSoftMax": lambda dtype: nnjit.LogSoftMax(),
    "ReLU": lambda dtype: nnjit.ReLU(),
    "LeakyReLU": lambda dtype: nnjit.LeakyReLU(),
    "ELU": lambda dtype: nnjit.ELU(),
    "SoftPlus": lambda dtype: nnjit.SoftPlus(),
    "Dropout": lambda dtype: nnjit.Dropout(0.3, seed=1),
    "BatchNormalization": lambda dtype: nnjit.BatchNormalization(0.9),
    "ChannelwiseScaling": lambda dtype: nnjit.ChannelwiseScaling(30, dtype=dtype),
    "Flatten": lambda dtype: nnjit.Flatten(),
}


@pytest.mark.parametrize("backend", nnjit.BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_buffers_are_reused(name, dtype, backend):
    rng = np.random.default_rng(0)
    module = LAYERS[name](dtype)
    with nnjit.backend(backend):
        first_out = first_grad = None
        for _ in range(3):
            x = rng.standard_normal((40, 30)).astype(dtype)  # new data, same shape
            out = module.forward(x)
            grad = module.backward(x, np.ones_like(out))
            if first_out is None:
                first_out, first_grad = out, grad
            if name != "Flatten":  # Flatten returns views of its input
                assert out is first_out and grad is first_grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", [name for name in LAYERS if name != "Flatten"])
def test_a_module_fed_its_own_buffers_or_views_of_them_computes_as_on_copies(name, dtype):
    """A reused buffer must not overlap the input it is computed from: a module fed its own
    output, a view of it (a slice, a reshape), or its own gradInput as gradOutput, gives what
    it gives for copies of the same values."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 30)).astype(dtype)
    module = LAYERS[name](dtype)
    module.evaluate()  # deterministic Dropout and BatchNormalization
    if name == "BatchNormalization":
        module.train()
        module.alpha = 1.0  # batch statistics, moving ones untouched
    for view in (lambda a: a, lambda a: a[:], lambda a: a.reshape(40, 30)):
        module.forward(x)
        expected = module.forward(module.output.copy()).copy()
        module.forward(x)
        np.testing.assert_array_equal(module.forward(view(module.output)), expected)
        out = module.forward(x).copy()
        grad = rng.standard_normal(out.shape).astype(dtype)
        module.backward(x, grad)
        expected = module.backward(x, module.gradInput.copy()).copy()
        module.backward(x, grad)
        np.testing.assert_array_equal(module.backward(x, view(module.gradInput)), expected)


@pytest.mark.parametrize("backend", nnjit.BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_training_step_allocates_nothing_of_batch_size(dtype, backend):
    """tracemalloc sees NumPy's allocations: after two warm-up steps, a training step's peak
    allocation stays far below the size of one activation array (128 x 256)."""
    model = nnjit.Sequential(nnjit.Linear(64, 256, dtype=dtype), nnjit.BatchNormalization(0.9),
                             nnjit.ChannelwiseScaling(256, dtype=dtype), nnjit.LeakyReLU(),
                             nnjit.Dropout(0.5, seed=0), nnjit.Linear(256, 10, dtype=dtype),
                             nnjit.LogSoftMax())
    criterion = nnjit.ClassNLLCriterion(log_input=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 64)).astype(dtype)
    labels = rng.integers(0, 10, 128)
    config = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    state = {}

    def step():
        model.zeroGradParameters()
        out = model.forward(x)
        criterion.forward(out, labels)
        model.backward(x, criterion.backward(out, labels))
        nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), config, state)

    with nnjit.backend(backend):
        step()
        step()
        moments = [id(a) for a in state["m"].values()] + [id(a) for a in state["v"].values()]
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            step()
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
    assert moments == [id(a) for a in state["m"].values()] + [id(a) for a in state["v"].values()]
    activation_bytes = 128 * 256 * np.dtype(dtype).itemsize
    if backend == "numba":
        assert peak < activation_bytes / 4, peak
        print(f"numba backend, peak {peak} bytes per step")
    else:  # the NumPy twins compute through temporaries: reported, not asserted
        print(f"numpy backend, peak {peak} bytes per step")


SHORT_PATH_LAYERS = ["ReLU", "LeakyReLU", "ELU", "SoftPlus", "SoftMax", "LogSoftMax"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SHORT_PATH_LAYERS)
def test_forward_after_a_call_checks_what_the_next_input_is(name, dtype):
    """The second forward of the same shape and dtype takes a shorter path: every other input
    must still be refused, copied or given a new buffer as on the first call."""
    rng = np.random.default_rng(2)
    module = LAYERS[name](dtype)
    square = rng.standard_normal((30, 30)).astype(dtype)
    for other_layout in (square.T, np.array(square, order="F")):  # a view; an owner
        expected = LAYERS[name](dtype).forward(np.ascontiguousarray(other_layout)).copy()
        module.forward(square)
        np.testing.assert_array_equal(module.forward(other_layout), expected)
    swapped = square.astype(np.dtype(dtype).newbyteorder())
    for refused in (swapped, square.astype(np.int32)):
        module.forward(square)
        with pytest.raises(TypeError, match="float32 or float64"):
            module.forward(refused)
    module.forward(square)
    module.output = np.zeros((30, 30), np.int64)  # a buffer put in by hand is checked too
    with pytest.raises(TypeError, match="float32 or float64"):
        module.forward(np.ones((30, 30), np.int64))
    if name in ("SoftMax", "LogSoftMax"):  # their input is (batch, features), whatever the buffer
        module.output = np.zeros((2, 3, 5), dtype)
        with pytest.raises(ValueError, match="2-D"):
            module.forward(np.ones((2, 3, 5), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SHORT_PATH_LAYERS)
def test_backward_after_a_call_checks_what_the_next_arguments_are(name, dtype):
    """A backward like the last call (same shapes and dtype, the forward's input) takes a
    shorter path: other layouts, dtypes, shapes and inputs, and buffers put in by hand, must
    still give what a fresh module gives, or be refused."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 30)).astype(dtype)
    g = rng.standard_normal((30, 30)).astype(dtype)
    other_dtype = np.float64 if np.dtype(dtype) == np.float32 else np.float32

    def fresh(x, g):
        module = LAYERS[name](dtype)
        module.forward(np.ascontiguousarray(x))
        return module.backward(np.ascontiguousarray(x), np.ascontiguousarray(g, dtype)).copy()

    module = LAYERS[name](dtype)

    def after_a_call():
        module.forward(x)
        module.backward(x, g)

    for other_grad in (g.T, np.array(g, order="F"), g.astype(np.dtype(dtype).newbyteorder()),
                       g.astype(other_dtype)):
        after_a_call()
        np.testing.assert_array_equal(module.backward(x, other_grad), fresh(x, other_grad))
    for other_input in (x.T, np.array(x, order="F"), x.copy()):  # not the forward's input
        after_a_call()
        np.testing.assert_array_equal(module.backward(other_input, g), fresh(other_input, g))
    after_a_call()
    with pytest.raises(TypeError, match="floating-point"):
        module.backward(x, g.astype(np.int32))
    with pytest.raises(ValueError, match="gradOutput"):
        module.backward(x, g[:, :29].copy())
    after_a_call()
    np.testing.assert_array_equal(module.backward(x, module.output), fresh(x, module.output))
    for grad in (g, g.astype(other_dtype)):
        for also_grad_input in (False, True):
            after_a_call()
            module.output = module.output.astype(other_dtype)  # put in by hand: recomputed
            if also_grad_input:
                module.gradInput = module.gradInput.astype(other_dtype)
            np.testing.assert_array_equal(module.backward(x, grad), fresh(x, grad))
    as_list = x.tolist()  # forward's input, not an array (computed in float64)
    first = LAYERS[name](dtype)
    first.forward(as_list)
    expected = first.backward(as_list, g).copy()
    module.forward(as_list)
    np.testing.assert_array_equal(module.backward(as_list, g), expected)
    for by_hand in (np.zeros((30, 30), dtype, order="F"), np.zeros((30, 30), np.int64)):
        after_a_call()
        module.gradInput = by_hand  # not a buffer the kernels can write: replaced
        grad = module.backward(x, g)
        assert grad is not by_hand and grad.flags.c_contiguous
        np.testing.assert_array_equal(grad, fresh(x, g))
