"""The CRF-RNN step layers: PermutohedralFilter, Compatibility, UnaryAdd.

References: pydensecrf2 (one mean-field step with a single kernel reveals the normalised filter output),
naive loops written here, and float64 central differences.
"""
import hashlib

import numpy as np
import pytest

from crfrnn_np.errors import NetError, ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer
from crfrnn_np.layers.permutohedral_filter import LatticeCache


def filter_snippet(kernel, theta_alpha=6.0, theta_beta=25.0, theta_gamma=2.0):
    return ('layer { name: "f" type: "PermutohedralFilter" bottom: "prob" bottom: "data" top: "msg" '
            'permutohedral_param { kernel: %s theta_alpha: %g theta_beta: %g theta_gamma: %g } }'
            % (kernel, theta_alpha, theta_beta, theta_gamma))


def probabilities(rng, shape):
    p = rng.uniform(0.05, 1.0, shape)
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("kernel", ["SPATIAL", "BILATERAL"])
def test_filter_matches_pydensecrf(rng, kernel):
    """softmax(U + w·F̃P) from a 1-iteration DenseCRF with one kernel gives F̃P (its classes sum to 1)."""
    dcrf = pytest.importorskip("pydensecrf.densecrf")
    n, c, h, w = 2, 4, 8, 10
    unary = rng.standard_normal((n, c, h, w))
    image = rng.uniform(-100, 100, (n, 3, h, w))
    prob = np.exp(unary) / np.exp(unary).sum(axis=1, keepdims=True)
    layer, bottom, top = make_layer(filter_snippet(kernel), [prob, image], dtype=np.float32)
    layer.forward(bottom, top)
    ys, xs = np.mgrid[:h, :w]
    weight = 2.0
    for i in range(n):
        if kernel == "SPATIAL":
            feats = np.stack([xs.ravel() / 2.0, ys.ravel() / 2.0])
        else:
            feats = np.concatenate([np.stack([xs.ravel() / 6.0, ys.ravel() / 6.0]),
                                    image[i].astype(np.float32).reshape(3, -1) / np.float32(25.0)])
        crf = dcrf.DenseCRF(h * w, c)
        crf.setUnaryEnergy(np.ascontiguousarray(-unary[i].reshape(c, -1), dtype=np.float32))
        crf.addPairwiseEnergy(np.ascontiguousarray(feats, dtype=np.float32), compat=weight,
                              kernel=dcrf.DIAG_KERNEL, normalization=dcrf.NORMALIZE_AFTER)
        q1 = np.array(crf.inference(1), dtype=np.float64)
        a = np.log(q1) - unary[i].reshape(c, -1)
        offset = (a.sum(axis=0) - weight) / c
        expected = (a - offset) / weight
        np.testing.assert_allclose(top[0].data[i].reshape(c, -1), expected, atol=2e-5)


@pytest.mark.parametrize("kernel", ["SPATIAL", "BILATERAL"])
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_filter_preserves_constants(rng, kernel, dtype, tol):
    """norm = 1/K𝟙 makes the normalised filter map a constant plane to itself."""
    values = np.ones((2, 3, 7, 9)) * np.array([1.0, -2.0, 0.5])[None, :, None, None]
    image = rng.uniform(-100, 100, (2, 3, 7, 9))
    layer, bottom, top = make_layer(filter_snippet(kernel), [values, image], dtype=dtype)
    layer.forward(bottom, top)
    assert top[0].data.dtype == dtype
    np.testing.assert_allclose(top[0].data, values, rtol=0, atol=tol)


@pytest.mark.parametrize("kernel", ["SPATIAL", "BILATERAL"])
def test_filter_gradient_float64(rng, kernel):
    values = rng.standard_normal((2, 3, 5, 6))
    image = rng.uniform(-100, 100, (2, 4, 5, 6))          # K = 4 channels: only the first three are read
    layer, bottom, top = make_layer(filter_snippet(kernel), [values, image])
    checker = GradientChecker(stepsize=1e-6, threshold=1e-6)
    assert checker.check_gradient_directional(layer, bottom, top, check_bottom=0, n_directions=4) <= 1e-6
    assert checker.check_gradient(layer, bottom, top, check_bottom=0) <= 1e-6


def test_filter_image_gets_zero_diff(rng):
    values = rng.standard_normal((1, 2, 4, 4))
    image = rng.uniform(-50, 50, (1, 3, 4, 4))
    layer, bottom, top = make_layer(filter_snippet("BILATERAL"), [values, image])
    layer.forward(bottom, top)
    top[0].diff = np.ones(top[0].shape)
    bottom[1].diff = np.ones(bottom[1].shape)
    layer.backward(top, [True, True], bottom)
    assert not bottom[1].diff.any()


def test_filter_shape_errors(rng):
    with pytest.raises(ShapeError, match="image"):
        make_layer(filter_snippet("SPATIAL"), [np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 4, 4))])
    with pytest.raises(ShapeError):
        make_layer(filter_snippet("SPATIAL"), [np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 4, 5))])
    with pytest.raises(NetError, match="positive"):
        make_layer(filter_snippet("BILATERAL", theta_beta=0), [np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 4, 4))])


def test_lattice_cache_builds_once_per_image(rng):
    cache = LatticeCache("cpu")
    image = rng.uniform(-50, 50, (3, 6, 5)).astype(np.float32)
    first = cache.bilateral(image, 5.0, 10.0, np.float32)
    assert cache.bilateral(image.copy(), 5.0, 10.0, np.float32) is first
    other = image.copy()
    other[0, 0, 0] += 1
    assert cache.bilateral(other, 5.0, 10.0, np.float32) is not first
    spatial = cache.spatial(6, 5, 3.0, np.float32)
    assert cache.spatial(6, 5, 3.0, np.float32) is spatial
    assert cache.builds == 3


def test_pinned_cache_skips_rehashing_only_inside_the_block(rng, monkeypatch):
    cache = LatticeCache("cpu")
    image = rng.uniform(-50, 50, (3, 6, 5)).astype(np.float32)
    hashes = []
    real = hashlib.blake2b
    monkeypatch.setattr(hashlib, "blake2b", lambda *a, **k: hashes.append(1) or real(*a, **k))
    with cache.pinned():
        first = cache.bilateral(image, 5.0, 10.0, np.float32)
        assert cache.bilateral(image, 5.0, 10.0, np.float32) is first
        assert cache.bilateral(image, 5.0, 11.0, np.float32) is not first
        assert len(hashes) == 2
    image[0, 0, 0] += 1                          # outside the block the content is hashed again
    assert cache.bilateral(image, 5.0, 10.0, np.float32) is not first
    assert len(hashes) == 3 and cache.builds == 3

def test_unrolled_filters_share_one_lattice_per_image(rng):
    """Two filter layers (two iterations of an unrolled net) on the same images: one build per image."""
    values = probabilities(rng, (2, 3, 5, 5))
    image = rng.uniform(-50, 50, (2, 3, 5, 5))
    cache = LatticeCache("cpu")
    layers = []
    for _ in range(2):
        layer, bottom, top = make_layer(filter_snippet("BILATERAL"), [values, image])
        layer.cache = cache
        layers.append((layer, bottom, top))
    for layer, bottom, top in layers:
        layer.forward(bottom, top)
        top[0].diff = np.ones(top[0].shape)
        layer.backward(top, [True, False], bottom)
    assert cache.builds == 2


class TestPermutohedralFilterBattery(LayerTestCase):
    """The bilateral filter of 2 class planes over a 3 x 4 image; the image (bottom 1) carries no gradient."""
    snippet = filter_snippet("BILATERAL")
    bottom_shapes = [(1, 2, 3, 4), (1, 3, 3, 4)]
    top_shapes = [(1, 2, 3, 4)]
    no_gradient = {1: "zero"}
    stepsize = 1e-6
    bad_bottom_shapes = [[(1, 2, 3, 4), (1, 3, 3, 5)],              # image of another size
                         [(1, 2, 3, 4), (1, 2, 3, 4)],              # image with 2 channels
                         [(1, 2, 3, 4), (2, 3, 3, 4)],              # image batch differs
                         [(1, 2, 12), (1, 3, 12)]]                  # not N x C x H x W

    def make_bottoms(self, rng):
        return [probabilities(rng, (1, 2, 3, 4)), rng.uniform(-100, 100, (1, 3, 3, 4))]


@pytest.mark.cudasim
def test_device_lattice_cache_under_simulator():
    """cuda backend: one bilateral lattice per image per forward, shared by its filters and the backward,
    rebuilt when the image blob is written (tests/layers/cudasim_filter_cache_check.py)."""
    import pathlib
    from crfrnn_np.testing import run_under_simulator
    run_under_simulator([pathlib.Path(__file__).resolve().parent / "cudasim_filter_cache_check.py"],
                        ok="cudasim filter cache OK")
