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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["ReLU", "LeakyReLU", "ELU", "SoftPlus"])
def test_elementwise_forward_after_a_call_checks_what_the_next_input_is(name, dtype):
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
