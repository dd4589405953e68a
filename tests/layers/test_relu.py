"""ReLU: Caffe's test_neuron_layer.cpp ReLU cases (spec caffe.md §3.6, §4.8)."""
import numpy as np
import pytest

from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer


def relu(x, slope=None, inplace=False, dtype=np.float64):
    param = "relu_param { negative_slope: %r }" % slope if slope is not None else ""
    top = "x" if inplace else "y"
    return make_layer('name: "relu" type: "ReLU" bottom: "x" top: "%s" %s' % (top, param), [x.copy()], dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_is_zero_or_input(rng, dtype):
    x = rng.standard_normal((2, 3, 4, 5))
    layer, bottom, top = relu(x, dtype=dtype)
    layer.forward(bottom, top)
    y = top[0].data
    assert y.dtype == dtype and y.shape == x.shape
    for xv, yv in zip(bottom[0].data.ravel(), y.ravel()):
        assert yv >= 0
        assert yv == 0 or yv == xv
        assert (yv == 0) == (xv <= 0)


def test_forward_negative_slope(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    layer, bottom, top = relu(x, slope=0.01)
    layer.forward(bottom, top)
    for xv, yv in zip(x.ravel(), top[0].data.ravel()):
        assert yv == (xv if xv > 0 else xv * float(np.float32(0.01)))


def test_backward_at_zero_uses_slope_branch():
    layer, bottom, top = relu(np.array([-2.0, 0.0, 3.0]), slope=0.5)
    layer.forward(bottom, top)
    top[0].diff[...] = [1.0, 1.0, 1.0]
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [0.5, 0.5, 1.0])


@pytest.mark.parametrize("slope", [None, 0.01])
def test_in_place_matches_out_of_place(rng, slope):
    x = rng.standard_normal((2, 3, 4, 5))
    dy = rng.standard_normal(x.shape)
    results = []
    for inplace in (False, True):
        layer, bottom, top = relu(x, slope=slope, inplace=inplace)
        assert (top[0] is bottom[0]) == inplace
        layer.forward(bottom, top)
        y = top[0].data.copy()
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        results.append((y, bottom[0].diff.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    expected = dy * np.where(x > 0, 1.0, float(np.float32(slope or 0.0)))
    np.testing.assert_array_equal(results[0][1], expected)


@pytest.mark.parametrize("slope", [None, 0.01])
def test_gradient(rng, slope):
    layer, bottom, top = relu(rng.standard_normal((2, 3, 4, 5)), slope=slope)
    GradientChecker(1e-2, 1e-3, 1701, 0.0, 0.01).check_gradient_eltwise(layer, bottom, top)


class TestReLUBattery(LayerTestCase):
    snippet = 'layer { name: "relu" type: "ReLU" bottom: "x" top: "y" relu_param { negative_slope: 0.1 } }'
    bottom_shapes = [(2, 3, 4)]
    top_shapes = [(2, 3, 4)]
    gradient = "eltwise"
    kink_range = 0.01

    def expected_forward(self, bottoms):
        slope = float(np.float32(0.1))                              # a prototxt float, as in caffe.proto
        return [np.where(bottoms[0] > 0, bottoms[0], slope * bottoms[0])]
