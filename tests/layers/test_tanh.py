"""TanH: values against math.tanh, in-place backward, float64 gradient check (spec caffe.md §3.12)."""
import math

import numpy as np
import pytest

from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer


def tanh_layer(x, inplace=False, dtype=np.float64):
    top = "x" if inplace else "y"
    return make_layer('name: "t" type: "TanH" bottom: "x" top: "%s"' % top, [x.copy()], dtype=dtype)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-6), (np.float64, 1e-14)])
def test_forward_values(rng, dtype, tol):
    layer, bottom, top = tanh_layer(rng.standard_normal((2, 3, 4, 5)) * 2, dtype=dtype)
    layer.forward(bottom, top)
    assert top[0].data.dtype == dtype
    for xv, yv in zip(bottom[0].data.ravel(), top[0].data.ravel()):
        assert abs(yv - math.tanh(float(xv))) <= tol


def test_in_place_backward_matches(rng):
    x = rng.standard_normal((3, 4))
    dy = rng.standard_normal(x.shape)
    diffs = []
    for inplace in (False, True):
        layer, bottom, top = tanh_layer(x, inplace)
        layer.forward(bottom, top)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        diffs.append(bottom[0].diff.copy())
    np.testing.assert_allclose(diffs[0], dy / np.cosh(x) ** 2, rtol=1e-12)
    np.testing.assert_array_equal(diffs[0], diffs[1])


def test_gradient(rng):
    layer, bottom, top = tanh_layer(rng.standard_normal((2, 3, 4, 5)))
    GradientChecker(1e-2, 1e-3, 1701).check_gradient_eltwise(layer, bottom, top)


class TestTanHBattery(LayerTestCase):
    snippet = 'layer { name: "t" type: "TanH" bottom: "x" top: "y" }'
    bottom_shapes = [(2, 3, 4)]
    top_shapes = [(2, 3, 4)]
    gradient = "eltwise"

    def expected_forward(self, bottoms):
        return [np.tanh(bottoms[0])]
