"""sgd_momentum and adam_optimizer against hand-computed steps."""
import numpy as np
import pytest

import nnjit

BACKENDS = ["numba", "numpy"]
ADAM = {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_first_two_steps_by_hand(dtype, backend):
    w = np.array([1.0, -2.0, 0.5], dtype)
    g1, g2 = np.array([0.1, -0.2, 0.3]), np.array([-0.4, 0.5, 0.0])
    state = {}
    with nnjit.backend(backend):
        nnjit.adam_optimizer([[w]], [[g1.astype(dtype)]], ADAM, state)
        after_one = w.copy()
        nnjit.adam_optimizer([[w]], [[g2.astype(dtype)]], ADAM, state)
    # step 1: m = 0.1 g1, v = 0.001 g1^2, lr_t = 0.01 sqrt(0.001) / 0.1
    m1, v1 = 0.1 * g1, 0.001 * g1**2
    w1 = np.array([1.0, -2.0, 0.5]) - 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9) * m1 / (np.sqrt(v1) + 1e-8)
    m2, v2 = 0.9 * m1 + 0.1 * g2, 0.999 * v1 + 0.001 * g2**2
    lr2 = 0.01 * np.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    w2 = w1 - lr2 * m2 / (np.sqrt(v2) + 1e-8)
    tol = dict(rtol=1e-6) if dtype == np.float32 else dict(rtol=1e-13)
    np.testing.assert_allclose(after_one, w1, **tol)
    np.testing.assert_allclose(w, w2, **tol)
    assert w.dtype == dtype and state["t"] == 2
    np.testing.assert_allclose(state["m"][0], m2, **tol)
    np.testing.assert_allclose(state["v"][0], v2, **tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_momentum_two_steps_by_hand(backend):
    w, b = np.array([[1.0, 2.0]]), np.array([0.5])
    gw, gb = np.array([[0.1, -0.3]]), np.array([0.2])
    config, state = {"learning_rate": 0.1, "momentum": 0.9}, {}
    with nnjit.backend(backend):
        for _ in range(2):
            nnjit.sgd_momentum([[w, b]], [[gw, gb]], config, state)
    acc1 = 0.1 * gw
    acc2 = 0.9 * acc1 + 0.1 * gw
    np.testing.assert_allclose(w, np.array([[1.0, 2.0]]) - acc1 - acc2)
    np.testing.assert_allclose(state["accumulated_grads"][1], 0.9 * 0.1 * gb + 0.1 * gb)


def test_optimizers_train_a_sequential_and_accept_flat_lists(rng):
    # the layers draw their initial weights from NumPy's global generator: this test's own
    # seed, not whatever state earlier tests left it in (3% of states give a start that 60
    # steps do not bring under 0.8 of its loss)
    global_state = np.random.get_state()
    np.random.seed(0)
    try:
        model = nnjit.Sequential(nnjit.Linear(3, 4), nnjit.ReLU(), nnjit.Linear(4, 2))
    finally:
        np.random.set_state(global_state)
    x, target = rng.standard_normal((32, 3)), rng.standard_normal((32, 2))
    criterion, state = nnjit.MSECriterion(), {}
    losses = []
    for _ in range(60):
        model.zeroGradParameters()
        losses.append(criterion.forward(model.forward(x), target))
        model.backward(x, criterion.backward(model.output, target))
        nnjit.adam_optimizer(model.getParameters(), model.getGradParameters(), ADAM, state)
    assert losses[-1] < 0.8 * losses[0]
    assert sorted(state["m"]) == [0, 1, 2, 3]
    linear = nnjit.Linear(2, 2)
    nnjit.sgd_momentum(linear.getParameters(), linear.getGradParameters(),
                       {"learning_rate": 0.1, "momentum": 0.0}, {})


def test_bad_optimizer_calls_are_refused_before_any_update():
    w, g = np.ones(3), np.ones(3)
    with pytest.raises(KeyError, match="adam_optimizer: config is missing 'beta2'"):
        nnjit.adam_optimizer([w], [g], {"learning_rate": 1, "beta1": 0.9, "epsilon": 1e-8}, {})
    with pytest.raises(KeyError, match="sgd_momentum: config is missing 'momentum'"):
        nnjit.sgd_momentum([w], [g], {"learning_rate": 1}, {})
    with pytest.raises(ValueError, match="2 variables but 1 gradients"):
        nnjit.sgd_momentum([w, w.copy()], [g], {"learning_rate": 1, "momentum": 0}, {})
    with pytest.raises(ValueError, match="gradient 1 has shape"):
        nnjit.sgd_momentum([w, w.copy()], [g, np.ones(2)], {"learning_rate": 1, "momentum": 0}, {})
    np.testing.assert_array_equal(w, 1)  # the first variable was not updated either
    with pytest.raises(TypeError, match="variable 0 must be a float32 or float64 array"):
        nnjit.sgd_momentum([np.ones(3, int)], [g], {"learning_rate": 1, "momentum": 0}, {})
    with pytest.raises(ValueError, match="writable C-contiguous"):
        nnjit.sgd_momentum([np.ones((3, 3))[:, 0]], [g], {"learning_rate": 1, "momentum": 0}, {})


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_of_any_layout_and_variables_of_mixed_dtypes(backend, rng):
    """Another float dtype, byte order or a strided view as the gradient gives the step of the
    equivalent C-contiguous array; float32 and float64 variables in one call each get the
    scalars of their own dtype."""
    shapes_dtypes = [((3, 4), np.float32), ((4,), np.float64), ((2, 3), np.float32)]
    start = [rng.standard_normal(shape).astype(dtype) for shape, dtype in shapes_dtypes]
    clean = [rng.standard_normal(shape).astype(dtype) for shape, dtype in shapes_dtypes]
    odd = [clean[0].astype(np.float64),                           # another dtype
           clean[1].astype(">f8"),                                # big-endian
           np.asfortranarray(np.repeat(clean[2], 2, axis=1))[:, ::2]]  # a strided view
    for make in (lambda: ADAM, lambda: {"learning_rate": 0.1, "momentum": 0.9}):
        config = make()
        optimizer = nnjit.adam_optimizer if "beta1" in config else nnjit.sgd_momentum
        expected, got = [w.copy() for w in start], [w.copy() for w in start]
        with nnjit.backend(backend):
            state_a, state_b = {}, {}
            for _ in range(2):
                optimizer(expected, clean, config, state_a)
                optimizer(got, odd, config, state_b)
        alone, state_c = start[1].copy(), {}
        with nnjit.backend(backend):
            for _ in range(2):
                optimizer([alone], [clean[1]], config, state_c)  # the float64 one on its own
        np.testing.assert_array_equal(expected[1], alone)
        for e, g, (_, dtype) in zip(expected, got, shapes_dtypes):
            assert g.dtype == dtype
            np.testing.assert_array_equal(g, e)
