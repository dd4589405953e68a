"""Concat: Caffe's test_concat_layer.cpp shapes and values (spec caffe.md §1.3, §3.12)."""
import numpy as np
import pytest

from crfrnn_np.errors import NetError, ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer


def concat(bottoms, param=""):
    names = " ".join('bottom: "b%d"' % i for i in range(len(bottoms)))
    return make_layer('name: "cat" type: "Concat" %s top: "y" concat_param { %s }' % (names, param), bottoms)


@pytest.fixture
def blobs(rng):
    return rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((5, 3, 6, 5)), rng.standard_normal((2, 5, 6, 5))


def test_axis_0(blobs):
    b0, b1, _ = blobs
    layer, bottom, top = concat([b0, b1], "axis: 0")
    assert top[0].shape == (7, 3, 6, 5)
    layer.forward(bottom, top)
    for n, c, h, w in np.ndindex(*top[0].shape):
        src = b0[n, c, h, w] if n < 2 else b1[n - 2, c, h, w]
        assert top[0].data[n, c, h, w] == src


@pytest.mark.parametrize("param", ["", "axis: 1", "axis: -3", "concat_dim: 1"])
def test_channels(blobs, param):
    b0, _, b2 = blobs
    layer, bottom, top = concat([b0, b2], param)
    assert top[0].shape == (2, 8, 6, 5)
    layer.forward(bottom, top)
    for n, c, h, w in np.ndindex(*top[0].shape):
        src = b0[n, c, h, w] if c < 3 else b2[n, c - 3, h, w]
        assert top[0].data[n, c, h, w] == src


def test_backward_slices(rng, blobs):
    b0, _, b2 = blobs
    layer, bottom, top = concat([b0, b2])
    layer.forward(bottom, top)
    dy = rng.standard_normal(top[0].shape)
    top[0].diff[...] = dy
    layer.backward(top, [True, True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, dy[:, :3])
    np.testing.assert_array_equal(bottom[1].diff, dy[:, 3:])


def test_single_bottom_copies(blobs):
    layer, bottom, top = concat([blobs[0]])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, blobs[0])


def test_errors(blobs):
    b0, b1, b2 = blobs
    with pytest.raises(ShapeError, match="differ outside the concat axis"):
        concat([b0, b1])
    with pytest.raises(NetError, match="not both"):
        concat([b0, b2], "axis: 1 concat_dim: 1")
    with pytest.raises(ShapeError, match="same number of axes"):
        concat([b0, b2[0]])


@pytest.mark.parametrize("param", ["axis: 0", "axis: 1"])
def test_gradient(rng, param):
    shapes = [(2, 3, 2, 2), (1, 3, 2, 2)] if param == "axis: 0" else [(2, 1, 2, 2), (2, 2, 2, 2)]
    layer, bottom, top = concat([rng.standard_normal(s) for s in shapes], param)
    GradientChecker(1e-2, 1e-2).check_gradient_exhaustive(layer, bottom, top)


class TestConcatBattery(LayerTestCase):
    snippet = ('layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "y" '
               'concat_param { axis: 1 } }')
    bottom_shapes = [(2, 3, 2, 2), (2, 1, 2, 2)]
    top_shapes = [(2, 4, 2, 2)]
    gradient = "exhaustive"
    bad_bottom_shapes = [[(2, 3, 2, 2), (2, 1, 3, 2)], [(2, 3, 2, 2), (2, 1, 2)]]

    def expected_forward(self, bottoms):
        return [np.concatenate(bottoms, axis=1)]
