"""Softmax: Caffe's test_softmax_layer.cpp (spec caffe.md §3.4, §4.7)."""
import math

import numpy as np
import pytest

from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer


def softmax_layer(x, param="", dtype=np.float64, inplace=False):
    top = "x" if inplace else "y"
    return make_layer('name: "sm" type: "Softmax" bottom: "x" top: "%s" softmax_param { %s }' % (top, param),
                      [x.copy()], dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_sums_and_values(rng, dtype):
    x = rng.standard_normal((2, 10, 2, 3))
    layer, bottom, top = softmax_layer(x, dtype=dtype)
    layer.forward(bottom, top)
    y = top[0].data
    assert y.dtype == dtype
    for n in range(2):
        for h in range(2):
            for w in range(3):
                total = sum(float(y[n, c, h, w]) for c in range(10))
                assert 0.999 <= total <= 1.001
                scale = sum(math.exp(float(x[n, c, h, w])) for c in range(10))
                for c in range(10):
                    assert abs(y[n, c, h, w] - math.exp(float(x[n, c, h, w])) / scale) < 1e-4


def test_max_subtraction_avoids_overflow():
    layer, bottom, top = softmax_layer(np.array([[1000.0, 1000.0, -1000.0]]), dtype=np.float32)
    with np.errstate(over="raise", invalid="raise"):
        layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [[0.5, 0.5, 0.0]])


def test_negative_axis(rng):
    x = rng.standard_normal((3, 4, 5))
    layer, bottom, top = softmax_layer(x, "axis: -1")
    layer.forward(bottom, top)
    e = np.exp(x)
    np.testing.assert_allclose(top[0].data, e / e.sum(axis=2, keepdims=True), rtol=1e-12)


def test_backward_formula_and_in_place(rng):
    x = rng.standard_normal((2, 4, 3))
    dy = rng.standard_normal(x.shape)
    diffs = []
    for inplace in (False, True):
        layer, bottom, top = softmax_layer(x, inplace=inplace)
        layer.forward(bottom, top)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        diffs.append(bottom[0].diff.copy())
    e = np.exp(x)
    y = e / e.sum(axis=1, keepdims=True)
    # Jacobian of softmax: dy_c/dx_k = y_c (delta_ck - y_k)
    expected = np.zeros_like(x)
    for n in range(2):
        for i in range(3):
            for k in range(4):
                expected[n, k, i] = sum(dy[n, c, i] * y[n, c, i] * ((c == k) - y[n, k, i]) for c in range(4))
    np.testing.assert_allclose(diffs[0], expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(diffs[1], diffs[0], rtol=1e-15)


def test_gradient(rng):
    layer, bottom, top = softmax_layer(rng.standard_normal((2, 10, 2, 3)))
    GradientChecker(1e-2, 1e-3).check_gradient_exhaustive(layer, bottom, top)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_blocked_passes_match_the_formula(rng, monkeypatch, axis):
    """Blocks much smaller than the array (so that the (outer, inner) blocking is exercised), in place."""
    from crfrnn_np.layers import softmax as module
    monkeypatch.setattr(module, "BLOCK", 7)
    x = rng.standard_normal((3, 5, 4)) * 10
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    out = x.copy()
    assert module.softmax(out, axis, out=out) is out
    np.testing.assert_allclose(out, y, rtol=1e-13, atol=1e-300)
    dy = rng.standard_normal(x.shape)
    expected = (dy - (dy * y).sum(axis=axis, keepdims=True)) * y
    got = dy.copy()
    module.softmax_backward(y, got, axis, out=got)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(module.softmax_backward(y, dy, axis), expected, rtol=1e-12, atol=1e-14)


class TestSoftmaxBattery(LayerTestCase):
    snippet = 'layer { name: "sm" type: "Softmax" bottom: "x" top: "y" }'
    bottom_shapes = [(2, 3, 2)]
    top_shapes = [(2, 3, 2)]
    gradient = "exhaustive"
    bad_bottom_shapes = [[(4,)]]                                    # no axis 1

    def expected_forward(self, bottoms):
        e = np.exp(bottoms[0])
        return [e / e.sum(axis=1, keepdims=True)]
