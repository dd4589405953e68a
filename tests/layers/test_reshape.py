"""Reshape: Caffe's test_reshape_layer.cpp shape rules (0 = copy, -1 = infer, axis, num_axes) and errors
(spec caffe.md §1.3, §3.12)."""
import pytest

from crfrnn_np.errors import NetError, ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer


def reshape(x, dims, extra="", top="y"):
    shape = " ".join("dim: %d" % d for d in dims)
    return make_layer('name: "r" type: "Reshape" bottom: "x" top: "%s" reshape_param { shape { %s } %s }'
                      % (top, shape, extra), [x])


@pytest.fixture
def x(rng):
    return rng.standard_normal((2, 3, 6, 5))


@pytest.mark.parametrize("dims,extra,shape", [
    ([0, -1, 1, 1], "", (2, 90, 1, 1)),          # flatten output sizes
    ([0, 1, -1, 1], "", (2, 1, 90, 1)),
    ([1, 1, 1], "axis: 0 num_axes: 0", (1, 1, 1, 2, 3, 6, 5)),  # insert singleton axes at the start
    ([1, 1, 1], "axis: 2 num_axes: 0", (2, 3, 1, 1, 1, 6, 5)),  # ... in the middle
    ([1, 1, 1], "axis: -1 num_axes: 0", (2, 3, 6, 5, 1, 1, 1)),  # ... at the end
    ([-1], "axis: 1 num_axes: 2", (2, 18, 5)),    # flatten the middle
    ([3, 2], "axis: 2 num_axes: 1", (2, 3, 3, 2, 5)),  # split one axis in two
    ([0, 0, 0, 0], "", (2, 3, 6, 5)),              # copy everything
    ([0, 0, 3, 10], "", (2, 3, 3, 10)),
    ([6, 2, 3, 5], "", (6, 2, 3, 5)),
])
def test_shapes(x, dims, extra, shape):
    layer, bottom, top = reshape(x, dims, extra)
    assert top[0].shape == shape


def test_forward_keeps_the_data_order(x):
    layer, bottom, top = reshape(x, [6, 2, 3, 5])
    layer.forward(bottom, top)
    flat_in, flat_out = x.ravel(), top[0].data.ravel()
    for i in range(x.size):
        assert flat_in[i] == flat_out[i]


def test_reshape_after_bottom_change(rng, x):
    layer, bottom, top = reshape(x, [0, -1])
    bottom[0].reshape((4, 2, 3))
    layer.reshape(bottom, top)
    assert top[0].shape == (4, 6)


@pytest.mark.parametrize("dims,extra,error,match", [
    ([-1, -1], "", NetError, "at most one"),
    ([2, -2], "", NetError, ">= -1"),
    ([7, -1], "", ShapeError, "cannot infer"),
    ([2, 3, 6, 6], "", ShapeError, "must match the input count"),
    ([0, 0, 0, 0, 0], "", ShapeError, "has no axis 4"),
    ([1], "axis: 5", ShapeError, "out of range"),
    ([1], "axis: 2 num_axes: 3", ShapeError, "exceed"),
])
def test_errors(x, dims, extra, error, match):
    with pytest.raises(error, match=match):
        reshape(x, dims, extra)


def test_in_place_is_forbidden(x):
    with pytest.raises(NetError, match="in-place"):
        reshape(x, [0, -1], top="x")


def test_gradient(rng):
    layer, bottom, top = reshape(rng.standard_normal((2, 3, 2)), [-1, 2])
    GradientChecker(1e-2, 1e-2).check_gradient_eltwise(layer, bottom, top)


class TestReshapeBattery(LayerTestCase):
    snippet = 'layer { name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param { shape { dim: -1 dim: 4 } } }'
    bottom_shapes = [(2, 3, 2)]
    top_shapes = [(3, 4)]
    gradient = "eltwise"
    bad_bottom_shapes = [[(5,)]]                                    # 5 elements are no multiple of 4

    def expected_forward(self, bottoms):
        return [bottoms[0].reshape(3, 4)]
