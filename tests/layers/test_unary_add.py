"""The UnaryAdd step layer: L = U - pairwise, and its two bottom diffs."""
import numpy as np
import pytest

from crfrnn_np.errors import ShapeError
from crfrnn_np.testing import LayerTestCase, make_layer


def test_unary_add(rng):
    u, phi = rng.standard_normal((2, 2, 3, 4, 5))
    layer, bottom, top = make_layer('layer { name: "a" type: "UnaryAdd" bottom: "u" bottom: "phi" top: "l" }',
                                    [u, phi])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, u - phi)
    g = rng.standard_normal(u.shape)
    top[0].diff = g
    layer.backward(top, [True, True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, g)
    np.testing.assert_array_equal(bottom[1].diff, -g)
    with pytest.raises(ShapeError):
        make_layer('layer { name: "a" type: "UnaryAdd" bottom: "u" bottom: "phi" top: "l" }',
                   [u, phi[:, :2]])


class TestUnaryAddBattery(LayerTestCase):
    snippet = 'layer { name: "a" type: "UnaryAdd" bottom: "u" bottom: "phi" top: "l" }'
    bottom_shapes = [(1, 2, 2, 3), (1, 2, 2, 3)]
    top_shapes = [(1, 2, 2, 3)]
    gradient = "exhaustive"
    bad_bottom_shapes = [[(1, 2, 2, 3), (1, 3, 2, 3)]]

    def expected_forward(self, bottoms):
        return [bottoms[0] - bottoms[1]]
