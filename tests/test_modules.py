"""The layer API: names, semantics of Module and Sequential, the backend switch, buffers."""
import copy
import threading

import numpy as np
import pytest

import nnjit
import nnjit.kernels as K
from nnjit.kernels import _blas


def test_public_names():
    for name in ["Module", "Sequential", "Criterion", "Linear", "SoftMax", "LogSoftMax",
                 "BatchNormalization", "ChannelwiseScaling", "Dropout", "ReLU", "LeakyReLU",
                 "ELU", "SoftPlus", "Flatten", "MSECriterion", "ClassNLLCriterion",
                 "ClassNLLCriterionUnstable", "CrossEntropyCriterion", "sgd_momentum",
                 "adam_optimizer", "set_backend", "backend", "get_backend", "warmup"]:
        assert hasattr(nnjit, name), name


def test_module_attributes_and_modes():
    module = nnjit.ReLU()
    assert module.output is None and module.gradInput is None and module.training is True
    assert module.evaluate() is module and module.training is False
    assert module.train() is module and module.training is True
    assert module.getParameters() == [] and module.getGradParameters() == []


def test_linear_layout_init_and_repr():
    np.random.seed(0)
    linear = nnjit.Linear(784, 10)
    assert linear.W.shape == (10, 784) and linear.b.shape == (10,)
    assert linear.W.dtype == np.float32 and linear.gradW.dtype == np.float32
    bound = 1 / np.sqrt(784)
    assert np.abs(linear.W).max() <= bound and np.abs(linear.W).max() > 0.9 * bound
    assert repr(linear) == "Linear(784 -> 10)"
    assert linear.getParameters()[0] is linear.W and linear.getGradParameters()[1] is linear.gradb
    x = np.random.randn(3, 784)
    out = linear.forward(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, x.astype(np.float32) @ linear.W.T + linear.b, rtol=1e-5, atol=1e-5)


def test_linear_float64_and_parameter_assignment():
    linear = nnjit.Linear(3, 2, dtype=np.float64)
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    linear.W = weight
    assert linear.W.dtype == np.float64 and linear.W.flags.c_contiguous
    linear.W += 1
    assert weight[0, 0] == 0  # the caller's array is never written
    with pytest.raises(ValueError, match="Linear: W must have shape"):
        linear.W = np.zeros((3, 2))
    with pytest.raises(TypeError, match="Linear"):
        nnjit.Linear(3, 2, dtype=np.int32)


def test_acc_grad_parameters_accumulates_and_zero_resets(rng):
    linear = nnjit.Linear(4, 3, dtype=np.float64)
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    linear.backward(x, g)
    once = linear.gradW.copy(), linear.gradb.copy()
    linear.backward(x, g)
    np.testing.assert_allclose(linear.gradW, 2 * once[0])
    np.testing.assert_allclose(linear.gradb, 2 * once[1])
    linear.zeroGradParameters()
    assert not linear.gradW.any() and not linear.gradb.any()


@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_zero_grad_parameters_zeros_every_kind_of_gradient_array(backend, rng):
    """Module.zeroGradParameters zeros flat-viewable float32/float64 arrays with a kernel and
    anything else (Fortran order, strided views, other dtypes, 0-d) with NumPy; a read-only
    array raises NumPy's error."""
    base = rng.standard_normal((70000, 4))
    grads = [rng.standard_normal(300_000).astype(np.float32), rng.standard_normal((9, 7)),
             rng.standard_normal((300, 250)),
             np.asfortranarray(rng.standard_normal((6, 5))), base[:, 1], base[::2],
             rng.standard_normal((4, 4)).astype(np.float16), np.array(2.5), np.empty((0, 3))]
    grads[0][-1] = -0.0

    class Holder(nnjit.Module):
        def getGradParameters(self):
            return grads

    with nnjit.backend(backend):
        Holder().zeroGradParameters()
    for grad in grads:
        assert not grad.any() and not np.signbit(grad).any(), grad.dtype
    assert np.count_nonzero(base) == 70000 * 4 - 35000 * 4 - 35000  # the views' elements only
    frozen = np.ones(5)
    frozen.flags.writeable = False
    grads[:] = [frozen]
    with pytest.raises(ValueError, match="read-only"):
        Holder().zeroGradParameters()


def _mlp():
    return nnjit.Sequential(nnjit.Linear(6, 5), nnjit.BatchNormalization(0.9), nnjit.ReLU(),
                            nnjit.Dropout(0.5), nnjit.Linear(5, 3), nnjit.SoftMax())


def test_sequential_container_protocol():
    model = _mlp()
    assert len(model) == 6 and isinstance(model[0], nnjit.Linear)
    assert [type(m).__name__ for m in model] == ["Linear", "BatchNormalization", "ReLU",
                                                 "Dropout", "Linear", "SoftMax"]
    model.add(nnjit.Flatten())
    assert len(model) == 7
    params = model.getParameters()
    assert len(params) == 7 and params[0] == [model[0].W, model[0].b] and params[2] == []
    text = repr(model)
    assert "(0): Linear(6 -> 5)" in text and "(3): Dropout(0.5)" in text
    model.evaluate()
    assert all(not m.training for m in model)
    model.train()
    assert all(m.training for m in model)
    with pytest.raises(TypeError, match="expected a Module"):
        model.add(np.zeros(3))


def test_sequential_backward_feeds_each_child_its_forward_input(rng):
    model = nnjit.Sequential(nnjit.Linear(4, 6, dtype=np.float64), nnjit.ELU(),
                             nnjit.Linear(6, 2, dtype=np.float64))
    x, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    model.forward(x)
    grad = model.backward(x, g)
    hidden = model[0].output
    g2 = model[2].updateGradInput(model[1].output, g)
    g1 = nnjit.ELU().updateGradInput(hidden, g2)
    np.testing.assert_allclose(grad, g1 @ model[0].W)
    # Torch7's split: updateGradInput then accGradParameters gives the same gradients.
    grads = [p.copy() for p in model[0].getGradParameters() + model[2].getGradParameters()]
    model.zeroGradParameters()
    np.testing.assert_allclose(model.updateGradInput(x, g), grad)
    assert not model[0].gradW.any()
    model.accGradParameters(x, g)
    for want, got in zip(grads, model[0].getGradParameters() + model[2].getGradParameters()):
        np.testing.assert_allclose(got, want)


def test_sequential_names_the_failing_child():
    model = nnjit.Sequential(nnjit.Linear(4, 3), nnjit.ReLU(), nnjit.Linear(5, 2))
    with pytest.raises(ValueError, match=r"in module 2 \(Linear\(5 -> 2\)\) of Sequential: "
                                         r"Linear: input must have 5 features"):
        model.forward(np.zeros((2, 4), np.float32))


def test_buffers_are_reused_across_calls(rng):
    model = nnjit.Sequential(nnjit.Linear(8, 8), nnjit.LeakyReLU(), nnjit.Linear(8, 4),
                             nnjit.LogSoftMax())
    criterion = nnjit.ClassNLLCriterion(log_input=True)
    x, y = rng.standard_normal((16, 8)).astype(np.float32), rng.integers(0, 4, 16)

    def step():
        out = model.forward(x)
        criterion.forward(out, y)
        model.backward(x, criterion.backward(out, y))
        return [m.output for m in model] + [m.gradInput for m in model] + [criterion.gradInput]

    first, second = step(), step()
    assert all(a is b for a, b in zip(first, second))


def test_feeding_a_module_its_own_output_is_safe(rng):
    softmax = nnjit.SoftMax()
    x = rng.standard_normal((3, 5))
    once = softmax.forward(x).copy()
    twice = softmax.forward(softmax.output)
    e = np.exp(once - once.max(axis=1, keepdims=True))
    np.testing.assert_allclose(twice, e / e.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parameter_free_modules_keep_the_input_dtype(dtype, rng):
    x = rng.standard_normal((4, 6)).astype(dtype)
    for module in [nnjit.SoftMax(), nnjit.LogSoftMax(), nnjit.ReLU(), nnjit.LeakyReLU(),
                   nnjit.ELU(), nnjit.SoftPlus(), nnjit.Dropout(0.3), nnjit.Flatten(),
                   nnjit.BatchNormalization()]:
        assert module.forward(x).dtype == dtype, module
        assert module.backward(x, np.ones_like(x)).dtype == dtype, module


def test_float64_input_to_float32_layer_computes_in_float32(rng):
    linear = nnjit.Linear(4, 2)
    out = linear.forward(rng.standard_normal((3, 4)))
    assert out.dtype == np.float32


def test_backend_switch_is_global_and_scoped(monkeypatch):
    calls = []
    kernel = K.relu_update_output
    twin = kernel.numpy
    monkeypatch.setattr(kernel, "numpy", lambda *a: (calls.append("numpy"), twin(*a)))
    relu, x = nnjit.ReLU(), np.ones(3, np.float32)

    def forward():
        calls.append("call")
        np.testing.assert_array_equal(relu.forward(x), x)
    assert nnjit.get_backend() == "numba"
    forward()
    with nnjit.backend("numpy"):
        assert nnjit.get_backend() == "numpy"
        forward()
    forward()
    nnjit.set_backend("numpy")
    try:
        forward()
    finally:
        nnjit.set_backend("numba")
    assert calls == ["call", "call", "numpy", "call", "call", "numpy"]
    with pytest.raises(ValueError, match="backend must be one of"):
        nnjit.set_backend("cuda")


def test_backend_context_is_per_thread():
    seen = []
    with nnjit.backend("numpy"):
        thread = threading.Thread(target=lambda: seen.append(nnjit.get_backend()))
        thread.start()
        thread.join()
    assert seen == ["numba"]


def test_nnjit_backend_environment_variable():
    import os
    import subprocess
    import sys
    code = "import nnjit; print(nnjit.get_backend())"
    env = dict(os.environ, NNJIT_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "numpy", out.stderr


def test_import_compiles_nothing_and_warmup_compiles_both_variants(rng):
    import subprocess
    import sys
    code = ("import nnjit, nnjit.kernels as K\n"
            "print(sum(len(k.serial.signatures) + len(k.parallel.signatures)\n"
            "          for k in K.ALL_KERNELS.values() if hasattr(k, 'serial')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "0", out.stderr
    model = nnjit.Sequential(nnjit.Linear(5, 4), nnjit.LeakyReLU(), nnjit.Linear(4, 3),
                             nnjit.LogSoftMax())
    x, y = rng.standard_normal((7, 5)).astype(np.float32), rng.integers(0, 3, 7)
    before = [m.W.copy() for m in (model[0], model[2])]
    nnjit.warmup(model, x, nnjit.ClassNLLCriterion(log_input=True), y)
    for name in ["leaky_relu_update_output", "log_softmax_update_grad_input",
                 "nll_log_labels_update_grad_input", "adam_step", "zero_fill"]:
        kernel = K.ALL_KERNELS[name]
        assert kernel.serial.signatures and kernel.parallel.signatures, name
    assert all(np.array_equal(a, m.W) for a, m in zip(before, (model[0], model[2])))
    assert model[0].output is None


def _cross_entropy_gradient_reference(x, target):
    x = x.astype(np.float64)
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    if target.ndim == 1:
        target = np.eye(x.shape[1])[target]
    return (target.sum(axis=1, keepdims=True) * p - target) / len(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dense", [False, True])
def test_cross_entropy_backward_uses_forward_statistics_only_for_the_same_input(dtype, dense, rng):
    """Backward reuses the row maximum and sum of exp of the latest forward of the same input
    object; any other input (no forward, another array, another dtype) gets forward first."""
    def target_for(x):
        labels = rng.integers(0, x.shape[1], len(x))
        # a soft target (label smoothing), so the dense path is not one-hot
        return (np.eye(x.shape[1])[labels] * 0.7 + 0.3 / x.shape[1]).astype(dtype) if dense else labels

    tol = dict(rtol=2e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
    criterion = nnjit.CrossEntropyCriterion()
    a = (rng.standard_normal((300, 400)) * 4).astype(dtype)  # parallel variants (120k elements)
    b = (rng.standard_normal((300, 400)) * 4).astype(dtype)
    ta, tb = target_for(a), target_for(b)
    np.testing.assert_allclose(criterion.backward(a, ta), _cross_entropy_gradient_reference(a, ta), **tol)
    criterion.forward(a, ta)
    np.testing.assert_allclose(criterion.backward(b, tb), _cross_entropy_gradient_reference(b, tb), **tol)
    np.testing.assert_allclose(criterion.backward(a, ta), _cross_entropy_gradient_reference(a, ta), **tol)
    small = a[:5].astype(np.float64 if dtype == np.float32 else np.float32)  # other shape and dtype
    np.testing.assert_allclose(criterion.backward(small, ta[:5]),
                               _cross_entropy_gradient_reference(small, ta[:5]), rtol=2e-5, atol=1e-7)
    criterion.forward(b, tb)
    with nnjit.backend("numpy"):  # statistics kept by the numba path serve the numpy path
        np.testing.assert_allclose(criterion.backward(b, tb), _cross_entropy_gradient_reference(b, tb), **tol)


def test_cross_entropy_statistics_are_per_thread(rng):
    criterion = nnjit.CrossEntropyCriterion()
    inputs = [(rng.standard_normal((64, 50)) * (k + 1)).astype(np.float32) for k in range(4)]
    labels = [rng.integers(0, 50, 64) for _ in range(4)]
    results, barrier = {}, threading.Barrier(4)

    def worker(k):
        for _ in range(50):
            criterion.forward(inputs[k], labels[k])
            barrier.wait()  # every thread's forward has run before any backward
            results[k] = criterion.backward(inputs[k], labels[k]).copy()
            barrier.wait()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        np.testing.assert_allclose(results[k], _cross_entropy_gradient_reference(inputs[k], labels[k]),
                                   rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dense", [False, True])
def test_cross_entropy_backward_after_its_input_changed_in_place(dtype, dense, rng):
    """The output buffer a model reuses is the usual way: forward of batch A, the criterion's
    forward, then a forward of batch B overwrites the same array before backward."""
    model = nnjit.Sequential(nnjit.Linear(20, 300, dtype=dtype), nnjit.ReLU())
    criterion = nnjit.CrossEntropyCriterion()
    a, b = rng.standard_normal((400, 20)).astype(dtype), rng.standard_normal((400, 20)).astype(dtype)
    labels = rng.integers(0, 300, 400)
    target = np.eye(300, dtype=dtype)[labels] if dense else labels
    tol = dict(rtol=2e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
    output = model.forward(a)
    criterion.forward(output, target)
    assert model.forward(b) is output  # the same buffer, new values
    np.testing.assert_allclose(criterion.backward(output, target),
                               _cross_entropy_gradient_reference(output, target), **tol)
    output[7, 3] += 5  # one element of one row
    np.testing.assert_allclose(criterion.backward(output, target),
                               _cross_entropy_gradient_reference(output, target), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_kernels_count_rows_whose_statistics_are_stale(dtype, rng):
    x = (rng.standard_normal((300, 500)) * 3).astype(dtype)
    labels, target = rng.integers(0, 500, 300), rng.random((300, 500))
    target = (target / target.sum(axis=1, keepdims=True)).astype(dtype)
    top, total, rows = np.empty(300, dtype), np.empty(300), np.empty(300, dtype)
    K.cross_entropy_labels_update_output.numba(x, labels, rows, top, total)
    changed = x.copy()
    for row, column in [(4, 0), (100, 250), (299, 499)]:  # a new maximum, a moved one, the last
        changed[row, column] = changed[row].max() + (1 if row != 100 else -1) * dtype(0.5)
    changed[10, 10] = np.nan
    for kernel, t, mass in [(K.cross_entropy_labels_update_grad_input, labels, ()),
                            (K.cross_entropy_update_grad_input, target, (np.empty(300, dtype),))]:
        for path in (kernel.serial, kernel.parallel, kernel.numpy):
            assert path(x, t, top, total, np.empty_like(x), *mass) == 0
            assert path(changed, t, top, total, np.empty_like(x), *mass) == 4


@pytest.mark.parametrize("sizes", [(6, 7, 5), (128, 784, 256)], ids=["6x7x5", "128x784x256"])
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_gradients_after_zeroing_accumulate_exactly(backend, dtype, sizes, rng):
    """After zeroGradParameters the first accumulation writes gradW by the product alone, but
    only while gradW is still zero: what a user added in between is kept, and later
    accumulations and a zeroing by hand add as always. At 128x784x256 the Numba path adds the
    product in place with one GEMM call (kernels/_blas.py), where NumPy's OpenBLAS is found."""
    batch, n_in, n_out = sizes
    layer = nnjit.Linear(n_in, n_out, dtype=dtype)
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    g = rng.standard_normal((batch, n_out)).astype(dtype)
    product, bias_sums = (g.T.astype(np.float64) @ x), g.sum(axis=0, dtype=np.float64)
    # the product's entries grow as sqrt(batch): the bounds that held at batch 6 scale from there
    scale = np.sqrt(batch / 6)
    tol = dict(rtol=1e-5, atol=1e-5 * scale) if dtype == np.float32 else \
        dict(rtol=1e-12, atol=1e-12 * scale)
    in_place = backend == "numba" and batch * n_in * n_out >= _blas.MIN_MULTIPLY_ADDS \
        and bool(_blas.gemm_functions())
    with nnjit.backend(backend):
        layer.zeroGradParameters()
        layer.backward(x, g)
        np.testing.assert_allclose(layer.gradW, product, **tol)
        layer.backward(x, g)  # no zeroing: adds
        np.testing.assert_allclose(layer.gradW, 2 * product, **tol)
        np.testing.assert_allclose(layer.gradb, 2 * bias_sums, **tol)
        layer.zeroGradParameters()
        layer.gradW += dtype(0.5)  # e.g. a regularizer's gradient, added before backward
        layer.backward(x, g)
        np.testing.assert_allclose(layer.gradW, product + 0.5, **tol)
        np.testing.assert_allclose(layer.gradb, bias_sums, **tol)
        layer.gradW.fill(0)  # zeroed by hand: the usual add
        layer.gradb.fill(0)
        layer.backward(x, g)
        np.testing.assert_allclose(layer.gradW, product, **tol)
        for mark in (np.finfo(dtype).smallest_subnormal, -0.0, np.nan):  # one entry, the rest zeros
            layer.zeroGradParameters()
            layer.gradW[4, 6] = mark
            layer.backward(x, g)
            expected = product.copy()
            expected[4, 6] += mark
            np.testing.assert_array_equal(np.isnan(layer.gradW), np.isnan(expected))
            np.testing.assert_allclose(layer.gradW, expected, **tol)
    # the in-place path never needs the buffer the others add the product from
    assert (layer._weight_buffer is None) == in_place


def _mixed_backend_cases():
    """(name, make the module, input shape): every layer; Conv2d on each of its four paths."""
    f8 = np.float64
    return [
        ("Linear", lambda: nnjit.Linear(6, 5, dtype=f8), (4, 6)),
        ("BatchNormalization", lambda: nnjit.BatchNormalization(0.9), (4, 6)),
        ("ChannelwiseScaling", lambda: nnjit.ChannelwiseScaling(6, dtype=f8), (4, 6)),
        ("ReLU", nnjit.ReLU, (4, 6)), ("LeakyReLU", nnjit.LeakyReLU, (4, 6)),
        ("ELU", nnjit.ELU, (4, 6)), ("SoftPlus", nnjit.SoftPlus, (4, 6)),
        ("SoftMax", nnjit.SoftMax, (4, 6)), ("LogSoftMax", nnjit.LogSoftMax, (4, 6)),
        ("Dropout, evaluation", lambda: nnjit.Dropout(0.5).evaluate(), (4, 6)),
        ("Flatten", nnjit.Flatten, (2, 3, 4, 4)),
        ("MaxPool2d", lambda: nnjit.MaxPool2d(2), (2, 3, 8, 8)),
        ("AvgPool2d", lambda: nnjit.AvgPool2d(2), (2, 3, 8, 8)),
        ("Conv2d small", lambda: nnjit.Conv2d(2, 3, 3, dtype=f8), (2, 2, 6, 6)),
        ("Conv2d wide", lambda: nnjit.Conv2d(16, 16, 3, dtype=f8), (8, 16, 16, 16)),
        ("Conv2d direct", lambda: nnjit.Conv2d(1, 16, 3, stride=2, dtype=f8), (64, 1, 29, 29)),
        ("Conv2d gemm", lambda: nnjit.Conv2d(4, 8, 3, stride=2, dtype=f8), (8, 4, 32, 32)),
    ]


MIXED_BACKEND_CASES = _mixed_backend_cases()


@pytest.mark.parametrize("forward_backend, backward_backend",
                         [("numpy", "numba"), ("numba", "numpy")])
@pytest.mark.parametrize("name, make, shape", MIXED_BACKEND_CASES,
                         ids=[case[0] for case in MIXED_BACKEND_CASES])
def test_backward_on_the_other_backend_than_forward(name, make, shape, forward_backend,
                                                    backward_backend):
    """A forward under one backend and the backward under the other (``with nnjit.backend``
    around the forward only) give the gradients both on one backend give: no state a kernel
    keeps from forward for backward may be one that the other backend's forward leaves
    unwritten. The layer saw another input on the backward's backend first."""
    rng = np.random.default_rng(0)
    np.random.seed(0)
    module = make()
    mixed = copy.deepcopy(module)
    x, other = rng.standard_normal(shape), rng.standard_normal(shape)
    with nnjit.backend(backward_backend):
        out = module.forward(x)
        g = rng.standard_normal(out.shape)
        module.zeroGradParameters()
        expected_input = module.backward(x, g).copy()
        expected = [p.copy() for p in module.getGradParameters()]
        mixed.forward(other)
    with nnjit.backend(forward_backend):
        mixed.forward(x)
    with nnjit.backend(backward_backend):
        mixed.zeroGradParameters()
        np.testing.assert_allclose(mixed.backward(x, g), expected_input, rtol=1e-9, atol=1e-12)
        for got, want in zip(mixed.getGradParameters(), expected):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def _float_dtypes_held(module):
    """Every float dtype object a module holds: attributes, arrays, per-thread call state."""
    values = list(vars(module).values())
    calls = module.__dict__.get("_call_state")
    if calls is not None:
        values += [getattr(calls, name) for name in type(module)._per_call_names]
    held = []
    for value in values:
        if isinstance(value, np.dtype):
            held.append(value)
        elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
            held.append(value.dtype)
    return held


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_or_unpickled_model_computes_in_numpys_own_dtype_objects(how):
    """Pickling and deepcopy make dtype objects equal to NumPy's but not them; the modules'
    per-call fast paths compare dtypes by identity, so a restored model would take the slow
    paths on every call. It must hold NumPy's own, and compute exactly as the original."""
    import copy
    import pickle

    np.random.seed(3)
    model = nnjit.Sequential(nnjit.Linear(6, 5, dtype=np.float64), nnjit.BatchNormalization(0.9),
                             nnjit.ChannelwiseScaling(5, dtype=np.float64), nnjit.LeakyReLU(),
                             nnjit.Dropout(0.3, seed=1), nnjit.Linear(5, 3, dtype=np.float64),
                             nnjit.LogSoftMax())
    x = np.random.default_rng(0).standard_normal((4, 6))
    model.forward(x)
    clone = copy.deepcopy(model) if how == "deepcopy" else pickle.loads(pickle.dumps(model))
    own = (np.dtype(np.float32), np.dtype(np.float64))
    for module in [clone] + clone.modules:
        for dtype in _float_dtypes_held(module):
            assert dtype is own[0] or dtype is own[1], (module, dtype)
    for a, b in zip(model.modules[0].getParameters(), clone.modules[0].getParameters()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(clone.forward(x), model.forward(x))
    clone.modules[0].W[...] = 0  # copies own their arrays
    assert model.modules[0].W.any()
