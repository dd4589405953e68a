"""The Compatibility step layer: the class-compatibility matrix against explicit loops, its diagonal
initialisation, its gradient and the accumulation of its parameter diff."""
import numpy as np
import pytest

from crfrnn_np.errors import NetError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer


COMPAT = ('layer { name: "c" type: "Compatibility" bottom: "x" top: "y" '
          'compatibility_param { %s } }')


def test_compatibility_forward_naive(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    layer, bottom, top = make_layer(COMPAT % 'num_output: 2 weight_filler { type: "gaussian" std: 1 }', [x])
    weight = layer.blobs[0].data[0, 0]
    assert weight.shape == (2, 3)
    layer.forward(bottom, top)
    expected = np.zeros((2, 2, 4, 5))
    for n in range(2):
        for i in range(2):
            for j in range(3):
                expected[n, i] += weight[i, j] * x[n, j]
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12, atol=1e-12)


def test_stacked_product_and_weight_diff_naive(rng, monkeypatch):
    """[W_s W_b]·[S; B] = W_s S + W_b B per image, and the accumulated weight gradient (summed over pixel
    blocks of 3, so that several blocks and a ragged last one are exercised), by explicit loops."""
    from crfrnn_np.layers import compatibility
    from crfrnn_np.layers.compatibility import accumulate_weight_diff, apply_compatibility
    monkeypatch.setattr(compatibility, "WEIGHT_DIFF_BLOCK", 3)
    n, c, h, w = 2, 3, 4, 5
    stack = rng.standard_normal((n, 2 * c, h, w))
    w_s, w_b = rng.standard_normal((c, c)), rng.standard_normal((c, c))
    out = np.empty((n, c, h, w))
    apply_compatibility(np.concatenate([w_s, w_b], axis=1), stack, out)
    dy = rng.standard_normal((n, c, h, w))
    grad = np.ones((c, 2 * c))
    accumulate_weight_diff(dy, stack, grad)
    expected = np.zeros((n, c, h, w))
    expected_grad = np.ones((c, 2 * c))
    for k in range(n):
        for i in range(c):
            for j in range(c):
                expected[k, i] += w_s[i, j] * stack[k, j] + w_b[i, j] * stack[k, c + j]
            for j in range(2 * c):
                expected_grad[i, j] += float((dy[k, i] * stack[k, j]).sum())
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_compatibility_diagonal_init():
    layer, _, _ = make_layer(COMPAT % 'diagonal_str: "1 2 3"', [np.zeros((1, 3, 2, 2))])
    np.testing.assert_array_equal(layer.blobs[0].data[0, 0], np.diag([1.0, 2.0, 3.0]))
    layer, _, _ = make_layer(COMPAT % 'diagonal_str: "-1"', [np.zeros((1, 3, 2, 2))])
    np.testing.assert_array_equal(layer.blobs[0].data[0, 0], -np.eye(3))
    with pytest.raises(NetError, match="need 3"):
        make_layer(COMPAT % 'diagonal_str: "1 2"', [np.zeros((1, 3, 2, 2))])
    with pytest.raises(NetError, match="numbers"):
        make_layer(COMPAT % 'diagonal_str: "1 x 2"', [np.zeros((1, 3, 2, 2))])


def test_compatibility_gradient_and_accumulation(rng):
    x = rng.standard_normal((2, 3, 3, 2))
    layer, bottom, top = make_layer(COMPAT % 'weight_filler { type: "gaussian" std: 1 }', [x])
    checker = GradientChecker(stepsize=1e-6, threshold=1e-7)
    assert checker.check_gradient_exhaustive(layer, bottom, top) <= 1e-7
    layer.blobs[0].diff[...] = 0
    layer.forward(bottom, top)
    top[0].diff = rng.standard_normal(top[0].shape)
    layer.backward(top, [True], bottom)
    once = layer.blobs[0].diff.copy()
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once)     # parameter diffs accumulate


class TestCompatibilityBattery(LayerTestCase):
    """3 classes in, 2 out; y[n, i] = Σ_j W[i, j] x[n, j] at every pixel."""
    snippet = ('layer { name: "c" type: "Compatibility" bottom: "x" top: "y" '
               'compatibility_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }')
    bottom_shapes = [(2, 3, 2, 3)]
    top_shapes = [(2, 2, 2, 3)]
    bad_bottom_shapes = [[(2, 3, 6)]]                               # not N x C x H x W
    bad_reshape_shapes = [[(2, 4, 2, 3)]]                           # other class count than the weights
