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
