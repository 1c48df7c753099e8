"""kernels/_blas.py: c += a @ b in one call to NumPy's OpenBLAS, or a refusal that changes
nothing (its callers then take np.matmul)."""
import numpy as np
import pytest

from nnjit.kernels import _blas

DTYPES = [np.float32, np.float64]
found = pytest.mark.skipif(not _blas.gemm_functions(),
                           reason="NumPy's BLAS has no ILP64 OpenBLAS interface to call")


def test_numpys_own_openblas_is_found_where_numpy_ships_one():
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    if blas.get("name") != "scipy-openblas" or "USE64BITINT" not in blas.get(
            "openblas configuration", ""):
        pytest.skip(f"NumPy is built with {blas.get('name')}, not the ILP64 scipy-openblas")
    assert set(_blas.gemm_functions()) == {np.dtype(np.float32), np.dtype(np.float64)}


@found
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n, k, transpose_a",
                         [(256, 784, 128, True), (256, 784, 128, False), (10, 300, 4096, True),
                          (1024, 1, 1024, False), (1, 1024, 1024, True)])
def test_add_product_adds_the_product_to_what_c_holds(dtype, m, n, k, transpose_a):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    expected = c.astype(np.float64) + (a.T if transpose_a else a).astype(np.float64) @ b
    assert _blas.add_product(c, a, b, transpose_a)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(c, expected, rtol=0, atol=20 * eps * k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_product_declines_what_it_cannot_take_and_changes_nothing(dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((512, 256)).astype(dtype)
    b = rng.standard_normal((256, 512)).astype(dtype)
    c = rng.standard_normal((512, 512)).astype(dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    read_only = c.copy()
    read_only.flags.writeable = False
    square = rng.standard_normal((512, 512)).astype(dtype)
    refused = [
        (c[:64, :64].copy(), a[:64, :64].copy(), b[:64, :64].copy()),  # too little work to pay
        (c, a.astype(other), b),  # mixed dtypes
        (c.astype(np.int64), a.astype(np.int64), b.astype(np.int64)),  # not floats
        (c, np.asfortranarray(a), b),  # not C-contiguous
        (c[:, ::2], a, b[:, ::2]),  # strided
        (read_only, a, b),
        (c, a, b[:-1]),  # shapes that disagree
        (c[:, :511], a, b),
        (c.astype(c.dtype.newbyteorder()), a, b),  # byte-swapped
        (square, square, rng.standard_normal((512, 512)).astype(dtype)),  # c is a
        (square, rng.standard_normal((512, 512)).astype(dtype), square),  # c is b
    ]
    for c_, a_, b_ in refused:
        before = c_.copy()
        assert not _blas.add_product(c_, a_, b_)
        np.testing.assert_array_equal(c_, before)
