"""The NumPy reference lattice's maths: constants, embedding, simplices, the exact transpose, and the
normalised filter against a brute-force dense Gaussian."""
import numpy as np
import pytest

from crfrnn_np.lattice import PermutohedralLattice, spatial_features
from crfrnn_np.lattice import reference


def dense_matrix(lat, reverse=False, dtype=np.float64):
    """K as a dense (N, N) matrix: filtering the identity gives out[k, i] = K[i, k]."""
    n = lat.num_points
    return lat.filter(np.eye(n, dtype=dtype), reverse=reverse).T


def test_constants_match_spec():
    np.testing.assert_array_equal(reference.scale_factors(2), np.float32([1.7320509, 1.0]))
    np.testing.assert_array_equal(reference.scale_factors(5),
                                  np.float32([3.4641018, 2.0, 1.4142137, 1.0954452, 0.89442724]))
    assert reference.slice_factor(2) == np.float32(0.8)
    assert reference.slice_factor(5) == np.float32(32.0 / 33.0)


def test_embed_matches_elevation_formula(rng):
    d = 4
    f = rng.normal(size=(50, d)).astype(np.float32) * 3
    c = f.astype(np.float64) * reference.scale_factors(d).astype(np.float64)
    naive = np.zeros((50, d + 1))
    for i in range(50):
        naive[i, 0] = c[i].sum()
        for j in range(1, d + 1):
            naive[i, j] = c[i, j:].sum() - j * c[i, j - 1]
    e = reference.embed(f)
    np.testing.assert_allclose(e, naive, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(e.sum(axis=1), 0, atol=1e-4)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_enclosing_simplex_is_a_lattice_simplex_containing_the_point(rng, d):
    e = reference.embed((rng.normal(size=(200, d)) * 4).astype(np.float32))
    keys, w = reference.enclosing_simplex(e)
    d1 = d + 1
    full = np.concatenate([keys, -keys.sum(axis=2, keepdims=True)], axis=2)   # (N, d+1, d+1)
    # the remainder-r vertex has every coordinate = r mod (d+1)
    for r in range(d1):
        assert np.all(full[:, r] % d1 == r)
    assert np.all(w >= -1e-6)
    np.testing.assert_allclose(w.sum(axis=1), 1, atol=1e-6)
    # barycentric interpolation of the vertices gives back the elevated point
    np.testing.assert_allclose((w[:, :, None] * full).sum(axis=1), e, atol=2e-4 * np.abs(e).max())


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("d", [2, 5])
def test_adjoint_identity(rng, backend, d):
    """<K x, y> = <x, K^T y> with K^T = filter(reverse=True), on features where K != K^T."""
    n = 120
    f = (rng.normal(size=(n, d)) * 1.2).astype(np.float32)
    lat = PermutohedralLattice(f, backend=backend)
    k = dense_matrix(lat)
    assert np.abs(k - k.T).max() > 1e-2          # K is not symmetric here: the test can fail
    np.testing.assert_allclose(dense_matrix(lat, reverse=True), k.T, rtol=0, atol=1e-15)
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        x = rng.normal(size=(3, n)).astype(dtype)
        y = rng.normal(size=(3, n)).astype(dtype)
        lhs = np.sum(lat.filter(x).astype(np.float64) * y)
        rhs = np.sum(x.astype(np.float64) * lat.filter(y, reverse=True))
        scale = np.sum(np.abs(lat.filter(np.abs(x)).astype(np.float64) * np.abs(y)))
        assert abs(lhs - rhs) <= rtol * scale
        # and the forward filter is NOT its own adjoint: the reverse flag matters
        wrong = np.sum(x.astype(np.float64) * lat.filter(y))
        assert abs(lhs - wrong) > 1e-6 * scale


def test_kernel_approximates_gaussian_raw_and_normalised():
    """On a dense 2-D grid the raw lattice response is a bounded multiple of the Gaussian sum and the
    normalised filter is close to the normalised dense Gaussian (approximation, not exactness)."""
    f = spatial_features(16, 16, 2.0)
    lat = PermutohedralLattice(f, backend="cpu")
    g = np.exp(-0.5 * ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1))
    ratio = lat.filter(np.ones((1, 256)))[0] / g.sum(1)
    assert 0.5 < ratio.min() and ratio.max() < 1.5
    x = np.random.default_rng(3).random((3, 256))
    lattice_norm = lat.filter(x) / lat.filter(np.ones((1, 256)))
    dense_norm = x @ g.T / g.sum(1)
    assert np.abs(lattice_norm - dense_norm).max() < 0.05
