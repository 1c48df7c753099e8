"""Dropout: mask statistics, scaling, modes, edge probabilities, seeds and thread counts."""
import numba
import numpy as np
import pytest

import nnjit

BACKENDS = ["numba", "numpy"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_statistics_and_scaling(p, backend):
    x = np.random.default_rng(0).uniform(1, 2, (1000, 1000)).astype(np.float32)
    with nnjit.backend(backend):
        out = nnjit.Dropout(p, seed=1).forward(x)
    dropped = out == 0
    n = x.size
    assert abs(dropped.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(out[~dropped], x[~dropped] / np.float32(1 - p), rtol=1e-6)
    # neighbouring elements are independent: no pattern along rows or columns
    pairs = (dropped[:, 1:] & dropped[:, :-1]).mean()
    assert abs(pairs - p * p) < 5 * np.sqrt(p * p * (1 - p * p) / n)
    assert abs(dropped.mean(axis=0).std() - np.sqrt(p * (1 - p) / 1000)) < 0.01


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_zeroes_exactly_the_dropped_positions(backend, rng):
    layer = nnjit.Dropout(0.4)
    x = rng.uniform(0.5, 1, (300, 257))
    g = rng.uniform(0.5, 1, x.shape)
    with nnjit.backend(backend):
        out = layer.forward(x)
        grad = layer.backward(x, g)
    np.testing.assert_array_equal(grad == 0, out == 0)
    np.testing.assert_allclose(grad, g * layer.mask)
    np.testing.assert_allclose(out, x * layer.mask)


def test_evaluation_is_the_identity(rng):
    layer = nnjit.Dropout(0.7).evaluate()
    x = rng.standard_normal((5, 6))
    out = layer.forward(x)
    np.testing.assert_array_equal(out, x)
    assert out is not x and layer.mask is None
    np.testing.assert_array_equal(layer.backward(x, 2 * x), 2 * x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_p_zero_and_one(backend, rng):
    x = rng.standard_normal((64, 700)).astype(np.float32)
    with nnjit.backend(backend):
        keep_all, drop_all = nnjit.Dropout(0.0), nnjit.Dropout(1.0)
        np.testing.assert_array_equal(keep_all.forward(x), x)
        np.testing.assert_array_equal(keep_all.backward(x, x), x)
        assert not drop_all.forward(x).any()
        assert not drop_all.backward(x, x).any()
        assert np.isfinite(drop_all.output).all()


def test_same_seed_same_mask_whatever_the_thread_count_and_backend():
    x = np.ones((512, 1024), np.float32)  # above the parallel threshold
    masks = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        try:
            masks.append(nnjit.Dropout(0.5, seed=42).forward(x).copy())
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    with nnjit.backend("numpy"):
        masks.append(nnjit.Dropout(0.5, seed=42).forward(x).copy())
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], masks[2])


def test_seeds_make_runs_repeatable_and_calls_differ():
    x = np.ones((50, 50))
    layer = nnjit.Dropout(0.5, seed=7)
    first, second = layer.forward(x).copy(), layer.forward(x).copy()
    assert not np.array_equal(first, second)  # a new mask every batch
    np.testing.assert_array_equal(nnjit.Dropout(0.5, seed=7).forward(x), first)
    np.random.seed(3)
    a = nnjit.Dropout(0.5).forward(x).copy()
    np.random.seed(3)
    b = nnjit.Dropout(0.5).forward(x).copy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_p_outside_the_unit_interval_is_refused(p):
    with pytest.raises(ValueError, match="Dropout: p must be in"):
        nnjit.Dropout(p)
    layer = nnjit.Dropout(0.5)
    layer.p = p
    with pytest.raises(ValueError, match="Dropout: p must be in"):
        layer.forward(np.ones((2, 2)))


def _numpys_draws(make_generator, count):
    """count seeds as NumPy's own full-range uint64 draw gives them."""
    generator = make_generator()
    return [int(generator.integers(0, 2**64, dtype=np.uint64)) for _ in range(count)]


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937, np.random.Philox])
def test_a_seeded_layer_draws_what_numpys_integers_draws(bit_generator):
    layer = nnjit.Dropout(0.5)
    layer._generator = np.random.Generator(bit_generator(11))
    drawn = [int(layer._next_seed()) for _ in range(5)]
    assert drawn == _numpys_draws(lambda: np.random.Generator(bit_generator(11)), 5)
    assert nnjit.Dropout(0.5, seed=11)._next_seed() == _numpys_draws(
        lambda: np.random.default_rng(11), 1)[0]


@pytest.mark.parametrize("other_draw", [None, np.random.standard_normal, np.random.random,
                                        lambda: np.random.randint(0, 7)])
def test_the_global_draw_is_numpys_randint_whatever_state_it_is_in(other_draw):
    state = np.random.get_state()
    try:
        np.random.seed(5)
        if other_draw is not None:
            other_draw()  # leaves a cached Gaussian, a part-used word: nothing the draw may use
        before = np.random.get_state()
        expected = [int(np.random.randint(0, 2**64, dtype=np.uint64)) for _ in range(4)]
        after = np.random.get_state()
        np.random.set_state(before)
        layer = nnjit.Dropout(0.5)
        assert [int(layer._next_seed()) for _ in range(4)] == expected
        # and the global generator is left where NumPy's own draws leave it
        for ours, numpys in zip(np.random.get_state(), after):
            np.testing.assert_array_equal(ours, numpys)
    finally:
        np.random.set_state(state)


def test_reassigned_p_and_a_new_dtype_take_effect():
    x = np.ones((400, 500))
    layer = nnjit.Dropout(0.5, seed=3)
    out = layer.forward(x)
    assert set(np.unique(out)) == {0.0, 2.0}
    layer.p = 0.2
    out = layer.forward(x)
    assert set(np.unique(out)) == {0.0, 1.25}
    assert abs((out == 0).mean() - 0.2) < 0.01
    layer.p = 0.3
    layer.forward(x)  # float64 first, at the same p
    x32 = np.random.default_rng(0).uniform(1, 2, x.shape).astype(np.float32)
    out32 = layer.forward(x32)
    kept = out32 != 0
    # scaled in float32 arithmetic, by the scale rounded to float32
    assert out32.dtype == np.float32 and 0.68 < kept.mean() < 0.72
    np.testing.assert_array_equal(out32[kept], x32[kept] * np.float32(1 / 0.7))
    layer.p = 1
    assert not layer.forward(x).any()
    layer.p = "half"
    with pytest.raises(TypeError, match="Dropout: p must be a number"):
        layer.forward(x)
