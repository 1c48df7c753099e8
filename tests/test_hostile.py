"""Hostile input to the criterions and optimizers, and NaN/inf through every module: a correct
result or an exception naming the object and the problem; never a crash, never the caller's
arrays modified."""
import numpy as np
import pytest

import nnjit

from test_bad_input import MODULES

CRITERIONS = {
    "MSECriterion": nnjit.MSECriterion,
    "ClassNLLCriterion": nnjit.ClassNLLCriterion,
    "ClassNLLCriterion(log_input=True)": lambda: nnjit.ClassNLLCriterion(log_input=True),
    "ClassNLLCriterionUnstable": nnjit.ClassNLLCriterionUnstable,
    "CrossEntropyCriterion": nnjit.CrossEntropyCriterion,
}


def _valid_pair(name, rng, n=5, c=4, dtype=np.float32):
    p = rng.random((n, c)) + 0.1
    p /= p.sum(axis=1, keepdims=True)
    x = {"MSECriterion": rng.standard_normal((n, c)),
         "ClassNLLCriterion": p, "ClassNLLCriterionUnstable": p,
         "ClassNLLCriterion(log_input=True)": np.log(p),
         "CrossEntropyCriterion": rng.standard_normal((n, c))}[name].astype(dtype)
    target = rng.standard_normal((n, c)).astype(dtype) if name == "MSECriterion" \
        else rng.integers(0, c, n)
    return x, target


def _type_name(name):
    return name.split("(")[0]


@pytest.mark.parametrize("name", sorted(CRITERIONS))
@pytest.mark.parametrize("bad", ["int", "bool", "complex", "object", "str"])
def test_criterion_non_floating_input(name, bad, rng):
    x, target = _valid_pair(name, rng)
    wrong = {"int": x.astype(np.int64), "bool": x > 0, "complex": x.astype(np.complex128),
             "object": x.astype(object), "str": x.astype(str)}[bad]
    with pytest.raises(TypeError, match=_type_name(name)):
        CRITERIONS[name]().forward(wrong, target)


@pytest.mark.parametrize("name", sorted(CRITERIONS))
def test_criterion_shape_problems(name, rng):
    x, target = _valid_pair(name, rng)
    criterion = CRITERIONS[name]()
    with pytest.raises(ValueError, match=_type_name(name)):
        criterion.forward(x[:, :, None] if name != "MSECriterion" else x, target[:-1])
    with pytest.raises(ValueError, match=_type_name(name)):
        criterion.backward(x[:-1], target)
    with pytest.raises(ValueError, match=_type_name(name)):
        criterion.forward(x[:0], target[:0])  # no samples: the mean is undefined


@pytest.mark.parametrize("name", [n for n in CRITERIONS if n != "MSECriterion"])
@pytest.mark.parametrize("labels", [[0, 1, 2, 3, -1], [0, 1, 2, 3, 4], [0.0, 1, 2, 3, 1]])
def test_label_problems(name, labels, rng):
    x, _ = _valid_pair(name, rng)
    error = TypeError if isinstance(labels[0], float) else ValueError
    with pytest.raises(error, match=_type_name(name)):
        CRITERIONS[name]().forward(x, np.array(labels))


@pytest.mark.parametrize("name", sorted(CRITERIONS))
@pytest.mark.parametrize("layout", ["lists", "fortran", "strided", "read-only"])
def test_criterion_awkward_valid_input(name, layout, rng):
    x, target = _valid_pair(name, rng, n=6, c=6)
    expected_loss = CRITERIONS[name]().forward(x, target)
    expected_grad = CRITERIONS[name]().backward(x, target).copy()
    if layout == "lists":
        given = x.tolist()
    elif layout == "fortran":
        given = np.asfortranarray(x)
    elif layout == "strided":
        wide = np.zeros((6, 12), x.dtype)
        wide[:, ::2] = x
        given = wide[:, ::2]
    else:
        given = x.copy()
        given.flags.writeable = False
    snapshot, target_snapshot = np.array(given, copy=True), np.array(target, copy=True)
    criterion = CRITERIONS[name]()
    loss, grad = criterion.forward(given, target), criterion.backward(given, target)
    if layout == "lists":  # lists become float64, the float32 reference rounds differently
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    else:
        assert loss == expected_loss
        np.testing.assert_array_equal(grad, expected_grad)
    np.testing.assert_array_equal(np.asarray(given), snapshot)
    np.testing.assert_array_equal(target, target_snapshot)


@pytest.mark.parametrize("name", sorted(CRITERIONS))
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_criterion_nan_input_gives_nan_not_garbage(name, backend, rng):
    x, target = _valid_pair(name, rng, dtype=np.float64)
    x[2, :] = np.nan
    with nnjit.backend(backend):
        criterion = CRITERIONS[name]()
        loss = criterion.forward(x, target)
        grad = criterion.backward(x, target)
    assert np.isnan(loss)
    assert np.isfinite(np.delete(grad, 2, axis=0)).all()
    if "log_input" not in name:  # the log form's gradient, -target/n, does not read the input
        assert np.isnan(grad[2]).any()


@pytest.mark.parametrize("name", [n for n in CRITERIONS if n != "MSECriterion"])
@pytest.mark.parametrize("target_kind", ["labels", "one_hot", "soft"])
@pytest.mark.parametrize("c", [10, 65, 1000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_one_nan_where_the_target_is_zero_still_gives_nan(name, target_kind, c, dtype, backend,
                                                           rng):
    """A single NaN input entry in a column whose target is 0 makes the loss NaN on both
    backends: the dense forms used to skip a zero target's term on the Numba path, NaN and
    all, and returned a number. The log form with labels reads only the labelled entries (as
    torch's nll_loss), so there a NaN elsewhere is not seen."""
    x, labels = _valid_pair(name, rng, n=8, c=c, dtype=dtype)
    one_hot = np.eye(c, dtype=dtype)[labels]
    target = {"labels": labels, "one_hot": one_hot,
              "soft": (0.9 * one_hot + 0.1 / c).astype(dtype)}[target_kind]
    row, column = 3, (labels[3] + c // 2) % c  # a column whose one-hot target is 0
    x[row, column] = np.nan
    with nnjit.backend(backend):
        loss = CRITERIONS[name]().forward(x, target)
    if name == "ClassNLLCriterion(log_input=True)" and target_kind == "labels":
        assert np.isfinite(loss)
    else:
        assert np.isnan(loss)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy's, on the numpy path
@pytest.mark.parametrize("name", sorted(MODULES))
@pytest.mark.parametrize("backend", nnjit.BACKENDS)
def test_nan_and_inf_flow_through_every_module(name, backend, rng):
    x = rng.standard_normal((5, 6)).astype(np.float32)
    x[1, 2], x[3, 4] = np.nan, np.inf
    snapshot = x.copy()
    np.random.seed(0)
    with nnjit.backend(backend):
        module = MODULES[name]()
        out = module.forward(x)
        grad = module.backward(x, np.ones_like(out))
    assert out.shape[0] == 5 and grad.shape == x.shape
    if name not in ("Dropout",):  # a dropped NaN is 0, as in torch
        assert np.isnan(out).any(), "the NaN disappeared"
    np.testing.assert_array_equal(x, snapshot)


@pytest.mark.parametrize("optimizer, config", [
    (nnjit.sgd_momentum, {"learning_rate": 0.1, "momentum": 0.9}),
    (nnjit.adam_optimizer, {"learning_rate": 0.1, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}),
])
def test_optimizer_configs(optimizer, config):
    name = optimizer.__name__
    w, g = np.ones(4, np.float32), np.full(4, 0.5, np.float32)
    for key in config:
        partial = {k: v for k, v in config.items() if k != key}
        with pytest.raises(KeyError, match=f"{name}: config is missing '{key}'"):
            optimizer([w], [g], partial, {})
        for bad, error in (("fast", TypeError), (None, TypeError), (float("nan"), ValueError),
                           (float("inf"), ValueError)):
            with pytest.raises(error, match=f"{name}: config\\['{key}'\\]"):
                optimizer([w], [g], dict(config, **{key: bad}), {})
    np.testing.assert_array_equal(w, 1)  # nothing was updated by a refused call
    read_only = np.ones(4, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match=f"{name}: variable 0 must be a writable"):
        optimizer([read_only], [g], config, {})
    with pytest.raises(TypeError, match=f"{name}: gradient 0 must be a float array"):
        optimizer([w], [np.ones(4, bool)], config, {})
    optimizer([w], [g.astype(np.float64)], config, {})  # cast to the variable's dtype
    assert (w < 1).all() and w.dtype == np.float32


@pytest.mark.parametrize("make, name", [(nnjit.LeakyReLU, "slope"), (nnjit.ELU, "alpha")])
def test_a_bad_layer_number_is_refused_by_the_constructor_naming_it(make, name):
    for bad, error in (("steep", TypeError), (None, TypeError), ([0.1], TypeError),
                       (float("nan"), ValueError), (float("inf"), ValueError),
                       (-np.inf, ValueError)):
        with pytest.raises(error, match=f"{make.__name__}: {name} must be "):
            make(bad)
    assert getattr(make(np.float32(0.25)), name) == 0.25  # NumPy scalars are numbers
    assert repr(make(-0.5)) == f"{make.__name__}(-0.5)"


@pytest.mark.parametrize("make, attribute, error", [
    (nnjit.LeakyReLU, "slope", r"LeakyReLU: slope must be a number, got 'steep'"),
    (nnjit.ELU, "alpha", r"ELU: alpha must be a number, got 'steep'"),
    (nnjit.Dropout, "p", r"Dropout: p must be a number in \[0, 1\], got 'steep'")])
def test_a_layer_number_reassigned_to_a_string_is_named_in_the_error(make, attribute, error):
    """In a Sequential the error names the child by its repr, which must not fail in turn."""
    layer = make()
    setattr(layer, attribute, "steep")
    assert repr(layer) == f"{type(layer).__name__}('steep')"
    model = nnjit.Sequential(nnjit.Linear(3, 3), layer)
    with pytest.raises((TypeError, ValueError),
                       match=rf"in module 1 \({type(layer).__name__}\('steep'\)\) of Sequential: {error}"):
        model.forward(np.ones((2, 3), np.float32))
