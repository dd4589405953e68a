"""Input: top shapes from input_param (spec caffe.md §1.3, §3.12)."""
import numpy as np
import pytest

from crfrnn_np.errors import NetError
from crfrnn_np.testing import LayerTestCase, make_layer


def input_layer(shapes, tops=("data",)):
    shape_text = " ".join("shape { %s }" % " ".join("dim: %d" % d for d in s) for s in shapes)
    top_text = " ".join('top: "%s"' % t for t in tops)
    return make_layer('name: "in" type: "Input" %s input_param { %s }' % (top_text, shape_text), [])


def test_one_shape_for_every_top():
    layer, bottom, top = input_layer([(1, 3, 5, 7)], ("data", "other"))
    assert [t.shape for t in top] == [(1, 3, 5, 7), (1, 3, 5, 7)]


def test_one_shape_per_top():
    layer, bottom, top = input_layer([(1, 3, 5, 7), (1,)], ("data", "label"))
    assert [t.shape for t in top] == [(1, 3, 5, 7), (1,)]


def test_no_shape_leaves_tops_to_the_net():
    layer, bottom, top = input_layer([])
    assert top[0].shape == ()


def test_reshape_keeps_the_shape_the_net_set():
    layer, bottom, top = input_layer([(1, 3, 5, 7)])
    top[0].reshape((2, 3, 4, 4))
    top[0].data[...] = 1.5
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert top[0].shape == (2, 3, 4, 4)
    assert np.all(top[0].data == 1.5)


def test_wrong_number_of_shapes():
    with pytest.raises(NetError, match="0, 1 or 3"):
        input_layer([(1,), (2,)], ("a", "b", "c"))


def test_no_bottoms_allowed():
    with pytest.raises(NetError, match="exactly 0 bottom"):
        make_layer('name: "in" type: "Input" bottom: "x" top: "y"', [np.zeros(2)])


class TestInputBattery(LayerTestCase):
    """A data layer: shapes, dtypes and blob counts only."""
    snippet = ('layer { name: "in" type: "Input" top: "a" top: "b" '
               'input_param { shape { dim: 2 dim: 3 } shape { dim: 4 } } }')
    bottom_shapes = []
    top_shapes = [(2, 3), (4,)]
    gradient = None
