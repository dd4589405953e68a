"""Split: tops alias the bottom's data; backward sums the top diffs (spec caffe.md §3.0, §3.8)."""
import numpy as np
import pytest

from crfrnn_np.errors import NetError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer


def split(x, n_top=2, inplace=False):
    tops = " ".join('top: "%s"' % ("x" if inplace and i == 0 else "x_%d" % i) for i in range(n_top))
    return make_layer('name: "s" type: "Split" bottom: "x" %s' % tops, [x])


def test_tops_alias_the_bottom_data(rng):
    layer, bottom, top = split(rng.standard_normal((2, 3, 4, 5)), 3)
    layer.forward(bottom, top)
    for t in top:
        assert t.shape == (2, 3, 4, 5)
        assert t.data is bottom[0].data


@pytest.mark.parametrize("n_top", [1, 2, 3])
def test_backward_sums(rng, n_top):
    layer, bottom, top = split(rng.standard_normal((2, 3)), n_top)
    layer.forward(bottom, top)
    diffs = [rng.standard_normal((2, 3)) for _ in range(n_top)]
    for t, d in zip(top, diffs):
        t.diff[...] = d
    bottom[0].diff[...] = 99.0
    layer.backward(top, [True], bottom)
    expected = np.zeros((2, 3))
    for d in diffs:
        expected = expected + d
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-15)


def test_in_place_is_forbidden(rng):
    with pytest.raises(NetError, match="in-place"):
        split(rng.standard_normal(3), 2, inplace=True)


def test_gradient(rng):
    layer, bottom, top = split(rng.standard_normal((2, 3, 2)), 3)
    GradientChecker(1e-2, 1e-3).check_gradient_exhaustive(layer, bottom, top)


class TestSplitBattery(LayerTestCase):
    snippet = 'layer { name: "s" type: "Split" bottom: "x" top: "y1" top: "y2" }'
    bottom_shapes = [(2, 3)]
    top_shapes = [(2, 3), (2, 3)]
    gradient = "exhaustive"

    def expected_forward(self, bottoms):
        return [bottoms[0], bottoms[0]]
