"""Agreement with Krähenbühl's lattice in pydensecrf2 (spec crfasrnn.md §3.8).

pydensecrf exposes its filter through one mean-field step: with a single pairwise term
``addPairwiseEnergy(F, compat=w, kernel=DIAG_KERNEL, normalization=NORMALIZE_AFTER)`` and unary energy U,
``inference(1)`` returns ``Q1 = softmax(-U + w K~ Q0)`` with ``Q0 = softmax(-U)`` and
``K~ q = (K q) / (K 1 + 1e-20)``. So ``log Q1 + U`` equals ``w K~ Q0`` up to a per-pixel constant, removed
here by centring over the labels. Pixel counts are multiples of 4 (pydensecrf pads other sizes with
extra lattice points; see ``crfrnn_np.lattice.reference``).
"""
import numpy as np
import pytest

from crfrnn_np.lattice import PermutohedralLattice, bilateral_features, spatial_features

dcrf = pytest.importorskip("pydensecrf.densecrf")


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
