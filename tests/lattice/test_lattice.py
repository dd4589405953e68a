"""PermutohedralLattice facade: input checking, dtypes, shapes, the CRF feature helpers, and agreement
with pydensecrf2's lattice."""
import numpy as np
import pytest

import crfrnn_np
from crfrnn_np.lattice import PermutohedralLattice, bilateral_features, spatial_features


@pytest.fixture
def features(rng):
    return (rng.normal(size=(30, 3)) * 2).astype(np.float32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_rejected(features, bad):
    features[7, 1] = bad
    with pytest.raises(crfrnn_np.ShapeError, match="point 7, feature 1"):
        PermutohedralLattice(features)


@pytest.mark.parametrize("shape", [(30,), (2, 3, 4), (30, 0)])
def test_wrong_rank_or_empty_dimension_rejected(shape):
    with pytest.raises(crfrnn_np.ShapeError):
        PermutohedralLattice(np.zeros(shape, np.float32))


def test_non_numeric_and_huge_features_rejected():
    with pytest.raises(crfrnn_np.ShapeError):
        PermutohedralLattice(np.array([["a", "b"]]))
    with pytest.raises(crfrnn_np.ShapeError, match="too large"):
        PermutohedralLattice(np.array([[1e9, 0.0]], np.float32))


def test_unknown_backend():
    with pytest.raises(crfrnn_np.BackendError, match="gpu"):
        PermutohedralLattice(np.zeros((4, 2)), backend="gpu")


def test_values_shape_mismatch(features):
    lat = PermutohedralLattice(features)
    with pytest.raises(crfrnn_np.ShapeError, match="N=30"):
        lat.filter(np.ones((2, 29), np.float32))
    with pytest.raises(crfrnn_np.ShapeError):
        lat.filter(np.ones((2, 30, 1), np.float32))
    with pytest.raises(crfrnn_np.ShapeError):
        lat.filter(np.ones((2, 30), np.complex64))


def test_dtypes_and_conversions(features, rng):
    lat = PermutohedralLattice(features)
    x64 = rng.normal(size=(3, 30))
    assert lat.filter(x64).dtype == np.float64
    assert lat.filter(x64.astype(np.float32)).dtype == np.float32
    # integer values become float64, a 1-D array is one channel
    xi = rng.integers(0, 5, size=(2, 30))
    np.testing.assert_allclose(lat.filter(xi), lat.filter(xi.astype(np.float64)), rtol=0, atol=0)
    np.testing.assert_array_equal(lat.filter(x64[0]), lat.filter(x64[:1])[0])
    # non-contiguous values and integer / float64 / non-contiguous features are converted
    xt = np.asfortranarray(x64)
    np.testing.assert_array_equal(lat.filter(xt), lat.filter(x64))
    strided = np.asfortranarray(features.astype(np.float64))
    np.testing.assert_array_equal(PermutohedralLattice(strided).filter(x64), lat.filter(x64))
    feats_int = np.arange(40).reshape(20, 2)
    np.testing.assert_array_equal(PermutohedralLattice(feats_int).filter(np.ones((1, 20))),
                                  PermutohedralLattice(feats_int.astype(np.float32)).filter(np.ones((1, 20))))


def test_empty_inputs(features):
    lat = PermutohedralLattice(np.zeros((0, 5), np.float32))
    assert lat.num_points == 0 and lat.num_vertices == 0
    assert lat.filter(np.zeros((4, 0), np.float32)).shape == (4, 0)
    assert PermutohedralLattice(features).filter(np.zeros((0, 30))).shape == (0, 30)


def test_single_point_and_d1(rng):
    lat = PermutohedralLattice(np.array([[0.3, -1.2]], np.float32))
    # one point: a positive self-weight below the Gaussian's 1 (alpha < 1 and the weights spread out)
    k = lat.filter(np.ones((1, 1)))[0, 0]
    assert 0 < k < 1
    f1 = rng.normal(size=(15, 1)).astype(np.float32)
    out = PermutohedralLattice(f1).filter(np.ones((1, 15)))
    assert np.all(out > 0)


def test_spatial_features_values():
    f = spatial_features(2, 3, 2.0)
    assert f.shape == (6, 2) and f.dtype == np.float32
    # p = y*W + x, x is the column
    np.testing.assert_array_equal(f[:, 0], np.array([0, 1, 2, 0, 1, 2]) / 2.0)
    np.testing.assert_array_equal(f[:, 1], np.array([0, 0, 0, 1, 1, 1]) / 2.0)
    assert spatial_features(2, 3, 2.0, dtype=np.float64).dtype == np.float64
    with pytest.raises(crfrnn_np.ShapeError):
        spatial_features(2, 3, 0.0)


def test_bilateral_features_values(rng):
    img = rng.normal(size=(4, 2, 3)).astype(np.float32) * 50
    f = bilateral_features(img, 4.0, 5.0)
    assert f.shape == (6, 5) and f.dtype == np.float32
    for y in range(2):
        for x in range(3):
            p = y * 3 + x
            np.testing.assert_allclose(f[p], [x / 4.0, y / 4.0, img[0, y, x] / 5.0, img[1, y, x] / 5.0,
                                              img[2, y, x] / 5.0], rtol=1e-7)
    with pytest.raises(crfrnn_np.ShapeError):
        bilateral_features(img[:2], 4.0, 5.0)
    with pytest.raises(crfrnn_np.ShapeError):
        bilateral_features(img[0], 4.0, 5.0)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_is_the_separate_multiplication_bit_for_bit(features, rng, backend, dtype):
    # filter(x, scale=s) = diag(s) K x and filter(x, reverse=True, scale=s) = K^T diag(s) x, exactly as the
    # two NumPy steps (the CPU backend does the product inside its slice / splat loops)
    lat = PermutohedralLattice(features, backend=backend)
    x = rng.normal(size=(4, 30)).astype(dtype)
    s = rng.uniform(0.5, 2.0, size=30).astype(dtype)
    np.testing.assert_array_equal(lat.filter(x, scale=s), lat.filter(x) * s)
    np.testing.assert_array_equal(lat.filter(x, reverse=True, scale=s), lat.filter(x * s, reverse=True))
    out = np.full((4, 30), np.nan, dtype)
    assert lat.filter(x, scale=s, out=out) is out
    np.testing.assert_array_equal(out, lat.filter(x) * s)
    lat.filter(x, reverse=True, out=out)
    np.testing.assert_array_equal(out, lat.filter(x, reverse=True))
    one = np.full(30, np.nan, dtype)
    assert lat.filter(x[0], scale=s, out=one) is one
    np.testing.assert_array_equal(one, lat.filter(x[:1])[0] * s)


def test_scale_and_out_checked(features):
    lat = PermutohedralLattice(features)
    x = np.ones((2, 30), np.float32)
    with pytest.raises(crfrnn_np.ShapeError, match="scale"):
        lat.filter(x, scale=np.ones(29))
    with pytest.raises(crfrnn_np.ShapeError, match="out"):
        lat.filter(x, out=np.empty((2, 30), np.float64))
    with pytest.raises(crfrnn_np.ShapeError, match="overlap"):
        lat.filter(x, out=x)
    assert not np.any(PermutohedralLattice(np.zeros((0, 2))).filter(np.ones((1, 0)), out=np.ones((1, 0))))


# -- the facade against pydensecrf2 ------------------------------------------------------------------------
# Agreement with Krähenbühl's lattice in pydensecrf2 (spec crfasrnn.md §3.8).
#
# pydensecrf exposes its filter through one mean-field step: with a single pairwise term
# ``addPairwiseEnergy(F, compat=w, kernel=DIAG_KERNEL, normalization=NORMALIZE_AFTER)`` and unary energy U,
# ``inference(1)`` returns ``Q1 = softmax(-U + w K~ Q0)`` with ``Q0 = softmax(-U)`` and
# ``K~ q = (K q) / (K 1 + 1e-20)``. So ``log Q1 + U`` equals ``w K~ Q0`` up to a per-pixel constant, removed
# here by centring over the labels. Pixel counts are multiples of 4 (pydensecrf pads other sizes with
# extra lattice points; see ``crfrnn_np.lattice.reference``).


def smooth_image(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((3, h, w))
    for _ in range(4):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        img += rng.normal(size=(3, 1, 1)) * 60 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.3 * w) ** 2))
    return (img + rng.normal(size=img.shape) * 2).astype(np.float32)


def softmax(x):
    e = np.exp(x - x.max(axis=0))
    return e / e.sum(axis=0)


def centred(x):
    return x - x.mean(axis=0)


def pydensecrf_message(features, unary, compat):
    """``compat * K~ Q0`` computed by pydensecrf, centred over labels. features (N, d), unary (C, N)."""
    dcrf = pytest.importorskip("pydensecrf.densecrf")
    c, n = unary.shape
    crf = dcrf.DenseCRF(n, c)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseEnergy(np.ascontiguousarray(features.T, dtype=np.float32), compat=compat,
                          kernel=dcrf.DIAG_KERNEL, normalization=dcrf.NORMALIZE_AFTER)
    q1 = np.array(crf.inference(1), dtype=np.float64)
    return centred(np.log(q1) + unary)


def our_message(features, unary, compat, backend="cpu"):
    lat = PermutohedralLattice(features, backend=backend)
    q0 = softmax(-unary.astype(np.float64))
    norm = 1.0 / (lat.filter(np.ones((1, unary.shape[1]))) + 1e-20)
    return centred(compat * lat.filter(q0) * norm)


def dense_message(features, unary, compat):
    f = features.astype(np.float64)
    g = np.exp(-0.5 * ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1))
    q0 = softmax(-unary.astype(np.float64))
    return centred(compat * (q0 @ g.T) / g.sum(axis=1))


CASES = {
    "spatial": lambda rng: spatial_features(12, 16, 3.0),
    "bilateral": lambda rng: bilateral_features(smooth_image(rng, 12, 16), 8.0, 13.0),
    "bilateral-sharp": lambda rng: bilateral_features(smooth_image(rng, 16, 16), 5.0, 4.0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_pydensecrf(rng, case):
    features = CASES[case](rng)
    assert features.shape[0] % 4 == 0
    unary = rng.random((5, features.shape[0])) * 3
    theirs = pydensecrf_message(features, unary, 2.0)
    ours = our_message(features, unary, 2.0)
    assert np.abs(theirs).max() > 0.05           # the message is not negligible
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_against_dense_gaussian_no_larger_than_pydensecrf(rng, case):
    features = CASES[case](rng)
    unary = rng.random((5, features.shape[0])) * 3
    exact = dense_message(features, unary, 1.0)
    err_ours = np.abs(our_message(features, unary, 1.0) - exact).max()
    err_theirs = np.abs(pydensecrf_message(features, unary, 1.0) - exact).max()
    assert err_ours <= err_theirs + 2e-5
