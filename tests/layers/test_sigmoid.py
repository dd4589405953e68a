"""Sigmoid: values against 1/(1+exp(-x)), in-place backward, float64 gradient check (spec caffe.md §3.12)."""
import math

import numpy as np
import pytest

from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer


def sigmoid_layer(x, inplace=False, dtype=np.float64):
    top = "x" if inplace else "y"
    return make_layer('name: "s" type: "Sigmoid" bottom: "x" top: "%s"' % top, [x.copy()], dtype=dtype)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-6), (np.float64, 1e-14)])
def test_forward_values(rng, dtype, tol):
    x = rng.standard_normal((2, 3, 4, 5)) * 3
    layer, bottom, top = sigmoid_layer(x, dtype=dtype)
    layer.forward(bottom, top)
    assert top[0].data.dtype == dtype
    for xv, yv in zip(bottom[0].data.ravel(), top[0].data.ravel()):
        assert abs(yv - 1.0 / (1.0 + math.exp(-float(xv)))) <= tol
        assert 0 <= yv <= 1


def test_extreme_inputs_do_not_overflow():
    layer, bottom, top = sigmoid_layer(np.array([-1000.0, 1000.0]), dtype=np.float32)
    with np.errstate(all="raise"):
        layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [0.0, 1.0])


def test_in_place_backward_matches(rng):
    x = rng.standard_normal((3, 4))
    dy = rng.standard_normal(x.shape)
    diffs = []
    for inplace in (False, True):
        layer, bottom, top = sigmoid_layer(x, inplace)
        layer.forward(bottom, top)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        diffs.append(bottom[0].diff.copy())
    s = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(diffs[0], dy * s * (1 - s), rtol=1e-12)
    np.testing.assert_array_equal(diffs[0], diffs[1])


def test_gradient(rng):
    layer, bottom, top = sigmoid_layer(rng.standard_normal((2, 3, 4, 5)))
    GradientChecker(1e-2, 1e-3, 1701).check_gradient_eltwise(layer, bottom, top)


class TestSigmoidBattery(LayerTestCase):
    snippet = 'layer { name: "s" type: "Sigmoid" bottom: "x" top: "y" }'
    bottom_shapes = [(2, 3, 4)]
    top_shapes = [(2, 3, 4)]
    gradient = "eltwise"

    def expected_forward(self, bottoms):
        return [1.0 / (1.0 + np.exp(-bottoms[0]))]
