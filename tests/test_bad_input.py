"""Bad input gets an exception naming the module and what was expected; awkward but valid
input (non-contiguous, Fortran order, lists, read-only, empty batches) gets correct results."""
import numpy as np
import pytest

import nnjit

MODULES = {
    "Linear": lambda: nnjit.Linear(6, 3),
    "SoftMax": nnjit.SoftMax,
    "LogSoftMax": nnjit.LogSoftMax,
    "BatchNormalization": nnjit.BatchNormalization,
    "ChannelwiseScaling": lambda: nnjit.ChannelwiseScaling(6),
    "Dropout": lambda: nnjit.Dropout(0.5, seed=1),
    "ReLU": nnjit.ReLU,
    "LeakyReLU": nnjit.LeakyReLU,
    "ELU": nnjit.ELU,
    "SoftPlus": nnjit.SoftPlus,
    "Flatten": nnjit.Flatten,
}
TWO_D = ["Linear", "SoftMax", "LogSoftMax", "BatchNormalization", "ChannelwiseScaling"]


@pytest.mark.parametrize("name", sorted(MODULES))
@pytest.mark.parametrize("bad", [np.ones((4, 6), np.int64), np.ones((4, 6), bool),
                                 np.ones((4, 6), np.complex128), np.ones((4, 6), object),
                                 [["a"] * 6] * 4], ids=["int", "bool", "complex", "object", "str"])
def test_non_floating_input_is_a_type_error_naming_the_module(name, bad):
    with pytest.raises(TypeError, match=name):
        MODULES[name]().forward(bad)


@pytest.mark.parametrize("name", sorted(set(MODULES) - {"Linear", "ChannelwiseScaling"}))
def test_float16_is_refused_by_parameter_free_modules(name):
    with pytest.raises(TypeError, match=f"{name}: input must be a float32 or float64"):
        MODULES[name]().forward(np.ones((4, 6), np.float16))


def test_layers_with_parameters_cast_floating_input():
    assert nnjit.Linear(6, 3).forward(np.ones((4, 6), np.float16)).dtype == np.float32
    assert nnjit.Linear(6, 3).forward([[1.0] * 6] * 4).dtype == np.float32


@pytest.mark.parametrize("name", TWO_D)
@pytest.mark.parametrize("shape", [(6,), (2, 3, 6)])
def test_wrong_ndim_is_a_value_error(name, shape):
    with pytest.raises(ValueError, match=f"{name}: input must be 2-D"):
        MODULES[name]().forward(np.ones(shape, np.float32))


@pytest.mark.parametrize("name", ["Linear", "ChannelwiseScaling"])
def test_wrong_feature_count(name):
    with pytest.raises(ValueError, match=f"{name}: input must have 6 features"):
        MODULES[name]().forward(np.ones((4, 5), np.float32))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_mismatched_grad_output(name):
    module, x = MODULES[name](), np.ones((4, 6), np.float32)
    out = module.forward(x)
    with pytest.raises(ValueError, match=f"{name}: gradOutput .* must have shape"):
        module.backward(x, np.ones((out.shape[0] + 1,) + out.shape[1:], np.float32))
    with pytest.raises(TypeError, match=name):
        module.backward(x, np.ones(out.shape, np.int32))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_non_contiguous_fortran_and_read_only_input_give_correct_results(name, rng):
    base = rng.standard_normal((8, 12)).astype(np.float32)
    views = {"strided": base[::2, ::2], "fortran": np.asfortranarray(base[:4, :6]),
             "transposed": base[:6, :4].T}
    read_only = base[:4, :6].copy()
    read_only.flags.writeable = False
    views["read-only"] = read_only
    for label, view in views.items():
        np.random.seed(0)
        module = MODULES[name]()
        snapshot = view.copy()
        out = module.forward(view).copy()
        grad = module.backward(view, np.ones_like(out)).copy()
        np.random.seed(0)
        reference = MODULES[name]()
        if hasattr(module, "W"):
            reference.W, reference.b = module.W, module.b
        if hasattr(module, "gamma"):
            reference.gamma, reference.beta = module.gamma, module.beta
        contiguous = np.ascontiguousarray(view)
        np.testing.assert_array_equal(out, reference.forward(contiguous), err_msg=label)
        np.testing.assert_array_equal(grad, reference.backward(contiguous, np.ones_like(out)),
                                      err_msg=label)
        np.testing.assert_array_equal(view, snapshot, err_msg=f"{label}: input modified")


@pytest.mark.parametrize("name", sorted(set(MODULES) - {"BatchNormalization"}))
def test_empty_batch_gives_empty_output(name):
    module = MODULES[name]()
    out = module.forward(np.ones((0, 6), np.float32))
    assert out.shape[0] == 0
    assert module.backward(np.ones((0, 6), np.float32), np.ones(out.shape, np.float32)).shape == (0, 6)


def test_batch_normalization_empty_batch_in_training_is_refused():
    with pytest.raises(ValueError, match="BatchNormalization: batch statistics of an empty batch"):
        nnjit.BatchNormalization().forward(np.ones((0, 6)))
    assert nnjit.BatchNormalization().evaluate().forward(np.ones((0, 6))).shape == (0, 6)


@pytest.mark.parametrize("alpha", [-0.5, 1.5])
def test_batch_normalization_alpha_outside_unit_interval(alpha):
    with pytest.raises(ValueError, match="BatchNormalization: alpha must be in"):
        nnjit.BatchNormalization(alpha)


@pytest.mark.parametrize("args", [(0, 3), (3, -1), (2.5, 3), (True, 3)])
def test_linear_sizes_must_be_positive_integers(args):
    with pytest.raises(ValueError, match="Linear: n_"):
        nnjit.Linear(*args)


CRITERIONS = {
    "ClassNLLCriterion": nnjit.ClassNLLCriterion,
    "ClassNLLCriterion(log_input=True)": lambda: nnjit.ClassNLLCriterion(log_input=True),
    "CrossEntropyCriterion": nnjit.CrossEntropyCriterion,
}


def _probs(n=4, c=3):
    return np.full((n, c), 1 / c, np.float32)


@pytest.mark.parametrize("name", sorted(CRITERIONS))
@pytest.mark.parametrize("labels", [[0, 1, 3, 0], [0, -1, 2, 0]], ids=["too-large", "negative"])
def test_labels_out_of_range(name, labels):
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        CRITERIONS[name]().forward(-_probs() if "log" in name else _probs(), np.array(labels))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        CRITERIONS[name]().backward(_probs(), np.array(labels))


@pytest.mark.parametrize("name", sorted(CRITERIONS))
def test_bad_targets(name):
    criterion = CRITERIONS[name]()
    with pytest.raises(TypeError, match="labels must be integers"):
        criterion.forward(_probs(), np.array([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match=r"labels \(one per sample\) must have shape \(4,\)"):
        criterion.forward(_probs(), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"target \(one row per sample\) must have shape"):
        criterion.forward(_probs(), np.eye(3)[[0, 1, 2]])
    with pytest.raises(ValueError, match="the batch is empty"):
        criterion.forward(np.ones((0, 3), np.float32), np.array([], np.int64))
    with pytest.raises(ValueError, match="input must be 2-D"):
        criterion.forward(np.ones(3, np.float32), np.array([0]))


def test_negative_probabilities_point_to_the_log_form():
    log_probs = np.log(_probs())
    with pytest.raises(ValueError, match=r"log_input=True"):
        nnjit.ClassNLLCriterion().forward(log_probs, np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"log_input=True"):
        nnjit.ClassNLLCriterionUnstable().backward(log_probs, np.array([0, 1, 2, 0]))
    loss = nnjit.ClassNLLCriterion(log_input=True).forward(log_probs, np.array([0, 1, 2, 0]))
    np.testing.assert_allclose(loss, np.log(3), rtol=1e-6)


def test_one_hot_targets_as_integers_and_labels_of_any_integer_dtype():
    criterion = nnjit.ClassNLLCriterion()
    want = criterion.forward(_probs(), np.array([0, 1, 2, 0]))
    assert criterion.forward(_probs(), np.eye(3, dtype=np.int8)[[0, 1, 2, 0]]) == want
    assert criterion.forward(_probs(), np.array([0, 1, 2, 0], np.uint8)) == want


def test_mse_shapes():
    with pytest.raises(ValueError, match=r"MSECriterion: target \(the shape of the input\)"):
        nnjit.MSECriterion().forward(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(TypeError, match="MSECriterion: target"):
        nnjit.MSECriterion().forward(np.ones((3, 2)), np.ones((3, 2), int))
    loss = nnjit.MSECriterion().forward(np.ones((2, 3, 4), np.float32), np.zeros((2, 3, 4), np.float32))
    assert loss == 12 and loss.dtype == np.float32


def _criterions():
    return [nnjit.ClassNLLCriterion(), nnjit.ClassNLLCriterion(log_input=True),
            nnjit.CrossEntropyCriterion()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
@pytest.mark.parametrize("bad_row, says", [
    ([1, 1, 0], "sums to 2"),                 # multi-hot
    ([0.5, 0.2, 0.1], "sums to 0.8"),         # not normalized
    ([1.5, -0.5, 0], "negative entry -0.5 at column 1"),
    ([np.nan, 1, 0], "NaN at column 0"),
    ([0, 0, 0], "sums to 0,"),
])
def test_dense_targets_must_be_class_distributions(dtype, backend, bad_row, says):
    """Every criterion taking dense targets, forward and backward, refuses a row that is not
    a distribution, naming the first bad row and what is wrong with it."""
    rng = np.random.default_rng(0)
    p = rng.random((5, 3)) + 0.1
    p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
    target = np.eye(3, dtype=dtype)[[0, 1, 2, 0, 1]]
    target[3] = bad_row
    target[4] = bad_row  # only the first bad row is named
    with nnjit.backend(backend):
        for criterion in _criterions():
            x = np.log(p) if isinstance(criterion, nnjit.ClassNLLCriterion) and criterion.log_input else p
            for call in (criterion.forward, criterion.backward):
                with pytest.raises(ValueError, match=f"row 3 .*{says}") as caught:
                    call(x, target)
                assert type(criterion).__name__ in str(caught.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_a_negative_target_entry_is_refused_wherever_it_sits(dtype, backend):
    """A negative entry too small to move its row's sum off 1 (-1e-30), or -inf, is still
    refused, in short and long rows (the probability form's forward scans rows of more than
    64 columns in another loop) and at serial and parallel sizes, forward and backward; -0.0
    entries are zeros."""
    rng = np.random.default_rng(3)
    for n, c in [(5, 3), (64, 100), (512, 300)]:
        p = rng.random((n, c)) + 0.1
        p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
        labels = rng.integers(0, c, n)
        one_hot = np.eye(c, dtype=dtype)[labels]
        with nnjit.backend(backend):
            for criterion in _criterions():
                x = np.log(p) if isinstance(criterion, nnjit.ClassNLLCriterion) and criterion.log_input else p
                for row, column in [(0, 0), (n - 1, c - 1), (n // 2, (labels[n // 2] + 1) % c)]:
                    for value in (dtype(-1e-30), dtype(-np.inf)):
                        target = one_hot.copy()
                        target[row, column] = value
                        for call in (criterion.forward, criterion.backward):
                            with pytest.raises(ValueError, match=f"row {row} has a negative entry"):
                                call(x, target)
                signed_zeros = np.where(one_hot == 0, dtype(-0.0), one_hot)
                assert criterion.forward(x, signed_zeros) == criterion.forward(x, one_hot)
                np.testing.assert_array_equal(criterion.backward(x, signed_zeros),
                                              criterion.backward(x, one_hot))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_dense_targets_that_are_distributions_pass(dtype, backend):
    """One-hot rows (also as integers or booleans), label smoothing, softmax outputs rounded
    to float32 over 1000 classes, and float32 soft targets with float64 input: accepted, and
    the loss equals the one of the labels where the rows are one-hot."""
    rng = np.random.default_rng(1)
    n, c = 64, 1000
    logits = rng.standard_normal((n, c)) * 3
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
    labels = rng.integers(0, c, n)
    one_hot = np.eye(c)[labels]
    soft = np.exp(rng.standard_normal((n, c)))
    soft = (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)  # rounded in float32
    with nnjit.backend(backend):
        for criterion in _criterions():
            x = np.log(p) if isinstance(criterion, nnjit.ClassNLLCriterion) and criterion.log_input else p
            for target in (one_hot.astype(dtype), one_hot.astype(np.int64), one_hot.astype(bool),
                           (0.9 * one_hot + 0.1 / c).astype(dtype), soft):
                criterion.forward(x, target)
                criterion.backward(x, target)
            assert criterion.forward(x, one_hot.astype(dtype)) == pytest.approx(
                float(criterion.forward(x, labels)), rel=1e-6)


@pytest.mark.parametrize("backend", nnjit.BACKENDS)
@pytest.mark.parametrize("target_kind", ["labels", "dense"])
def test_probability_form_refuses_negative_input_found_in_the_kernels_pass(backend, target_kind):
    """The probability form's negative-input check now runs inside its kernels: wherever the
    negative entry sits (a labelled column or not, the first or last row, serial or parallel
    sizes), forward and backward raise; NaN input is not refused (it gives NaN, as before)."""
    rng = np.random.default_rng(2)
    criterion = nnjit.ClassNLLCriterion()
    for n, c in [(4, 3), (64, 10), (512, 300)]:
        p = rng.random((n, c)).astype(np.float32) + 0.01
        p /= p.sum(axis=1, keepdims=True)
        labels = rng.integers(0, c, n)
        target = labels if target_kind == "labels" else np.eye(c, dtype=np.float32)[labels]
        with nnjit.backend(backend):
            for row, column in [(0, 0), (n - 1, c - 1), (n // 2, labels[n // 2])]:
                bad = p.copy()
                bad[row, column] = -1e-3
                for call in (criterion.forward, criterion.backward):
                    with pytest.raises(ValueError, match="negative values"):
                        call(bad, target)
            with_nan = p.copy()
            with_nan[0, labels[0]] = np.nan
            assert np.isnan(criterion.forward(with_nan, target))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("make", [lambda: nnjit.ClassNLLCriterion(),
                                  lambda: nnjit.ClassNLLCriterion(log_input=True),
                                  nnjit.CrossEntropyCriterion], ids=["prob", "log", "cross_entropy"])
@pytest.mark.parametrize("n, c", [(4, 3), (300, 1000)])
def test_labels_out_of_range_are_refused_on_both_passes(make, backend, n, c):
    """The kernels flag labels out of range; the module names the bad label, at small and
    parallel sizes, whatever the input (NaN input must not hide a bad label)."""
    x = np.full((n, c), 1 / c, np.float32)
    with nnjit.backend(backend):
        criterion = make()
        for bad in [c, -1, 2**62, np.uint64(2**63 + 5)]:
            labels = np.arange(n, dtype=np.uint64 if isinstance(bad, np.uint64) else np.int64) % c
            labels[n // 2] = bad
            for inputs in (x, np.full_like(x, np.nan)):
                for call in (criterion.forward, criterion.backward):
                    with pytest.raises(ValueError, match=rf"labels must be in \[0, {c}\), got {bad}"):
                        call(inputs, labels)
        labels = np.arange(n) % c
        assert np.isfinite(criterion.forward(x, labels))  # and it still works afterwards
        assert np.isfinite(criterion.backward(x, labels)).all()
