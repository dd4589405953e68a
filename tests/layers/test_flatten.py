"""Flatten: Caffe's test_flatten_layer.cpp shapes and values (spec caffe.md §1.3, §3.12)."""
import numpy as np
import pytest

from crfrnn_np.errors import NetError, ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer


def flatten(x, param="", top="y"):
    return make_layer('name: "f" type: "Flatten" bottom: "x" top: "%s" flatten_param { %s }' % (top, param), [x])


@pytest.mark.parametrize("param,shape", [
    ("", (2, 90)),
    ("axis: 2", (2, 3, 30)),
    ("end_axis: -2", (2, 18, 5)),
    ("axis: 0 end_axis: 1", (6, 6, 5)),
    ("axis: 3 end_axis: 3", (2, 3, 6, 5)),
])
def test_shapes(rng, param, shape):
    layer, bottom, top = flatten(rng.standard_normal((2, 3, 6, 5)), param)
    assert top[0].shape == shape


def test_forward_values_and_view(rng):
    x = rng.standard_normal((2, 3, 6, 5))
    layer, bottom, top = flatten(x)
    layer.forward(bottom, top)
    for c in range(90):
        assert top[0].data[0, c] == x[0, c // 30, (c // 5) % 6, c % 5]
        assert top[0].data[1, c] == x[1, c // 30, (c // 5) % 6, c % 5]
    assert np.shares_memory(top[0].data, bottom[0].data)


def test_backward(rng):
    layer, bottom, top = flatten(rng.standard_normal((2, 3, 4)))
    layer.forward(bottom, top)
    dy = rng.standard_normal((2, 12))
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, dy.reshape(2, 3, 4))
    assert not np.shares_memory(bottom[0].diff, top[0].diff)


def test_errors(rng):
    x = rng.standard_normal((2, 3, 4))
    with pytest.raises(ShapeError, match="comes before"):
        flatten(x, "axis: 2 end_axis: 1")
    with pytest.raises(ShapeError, match="out of range"):
        flatten(x, "axis: 5")
    with pytest.raises(NetError, match="in-place"):
        flatten(x, top="x")


def test_gradient(rng):
    layer, bottom, top = flatten(rng.standard_normal((2, 3, 2, 2)))
    GradientChecker(1e-2, 1e-2).check_gradient_eltwise(layer, bottom, top)


class TestFlattenBattery(LayerTestCase):
    snippet = 'layer { name: "f" type: "Flatten" bottom: "x" top: "y" }'
    bottom_shapes = [(2, 3, 2, 2)]
    top_shapes = [(2, 12)]
    gradient = "eltwise"
    bad_bottom_shapes = [[(3,)]]                                    # no axis 1 to flatten from

    def expected_forward(self, bottoms):
        return [bottoms[0].reshape(2, 12)]
