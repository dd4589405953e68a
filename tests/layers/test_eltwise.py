"""Eltwise: Caffe's test_eltwise_layer.cpp cases (spec caffe.md §2, §3.10, §4.6)."""
import numpy as np
import pytest

from crfrnn_np.errors import NetError, ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer


def eltwise(bottoms, param, dtype=np.float64):
    names = " ".join('bottom: "b%d"' % i for i in range(len(bottoms)))
    return make_layer('name: "e" type: "Eltwise" %s top: "y" eltwise_param { %s }' % (names, param),
                      [b.copy() for b in bottoms], dtype=dtype)


@pytest.fixture
def abc(rng):
    return [rng.uniform(0, 1, (2, 3, 4, 5)) for _ in range(3)]


def forward(bottoms, param, dtype=np.float64):
    layer, bottom, top = eltwise(bottoms, param, dtype)
    layer.forward(bottom, top)
    return top[0].data


def test_setup_shape(abc):
    layer, bottom, top = eltwise(abc, "operation: PROD")
    assert top[0].shape == (2, 3, 4, 5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prod(abc, dtype):
    a, b, c = abc
    y = forward(abc, "operation: PROD", dtype)
    for i in range(y.size):
        assert abs(y.flat[i] - a.flat[i] * b.flat[i] * c.flat[i]) < 1e-4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum(abc, dtype):
    a, b, c = abc
    y = forward(abc, "operation: SUM", dtype)
    for i in range(y.size):
        assert abs(y.flat[i] - (a.flat[i] + b.flat[i] + c.flat[i])) < 1e-4


def test_sum_is_the_default(abc):
    np.testing.assert_allclose(forward(abc, ""), abc[0] + abc[1] + abc[2], rtol=1e-14)


def test_sum_coeff(abc):
    a, b, c = abc
    y = forward(abc, "operation: SUM coeff: 1 coeff: -0.5 coeff: 2")
    for i in range(y.size):
        assert abs(y.flat[i] - (a.flat[i] - 0.5 * b.flat[i] + 2 * c.flat[i])) < 1e-4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_exact(abc, dtype):
    y = forward(abc, "operation: MAX", dtype)
    cast = [x.astype(dtype) for x in abc]
    for i in range(y.size):
        assert y.flat[i] == max(cast[0].flat[i], cast[1].flat[i], cast[2].flat[i])


def test_max_tie_rules():
    # element 0: x0 == x1 -> bottom 1; element 1: x0 > x1 -> bottom 0; element 2: x2 ties the winner -> kept;
    # element 3: x2 strictly greater -> bottom 2
    x0 = np.array([1.0, 3.0, 5.0, 0.0])
    x1 = np.array([1.0, 2.0, 5.0, 0.0])
    x2 = np.array([0.0, 0.0, 5.0, 1.0])
    layer, bottom, top = eltwise([x0, x1, x2], "operation: MAX")
    layer.forward(bottom, top)
    np.testing.assert_array_equal(layer.mask, [1, 0, 1, 2])
    np.testing.assert_array_equal(top[0].data, [1.0, 3.0, 5.0, 1.0])
    top[0].diff[...] = [10.0, 20.0, 30.0, 40.0]
    layer.backward(top, [True, True, True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [0, 20, 0, 0])
    np.testing.assert_array_equal(bottom[1].diff, [10, 0, 30, 0])
    np.testing.assert_array_equal(bottom[2].diff, [0, 0, 0, 40])


def test_prod_backward_by_hand():
    layer, bottom, top = eltwise([np.array([2.0]), np.array([3.0]), np.array([5.0])], "operation: PROD")
    layer.forward(bottom, top)
    top[0].diff[...] = 0.5
    layer.backward(top, [True, False, True], bottom)
    assert bottom[0].diff[0] == 0.5 * 15 and bottom[2].diff[0] == 0.5 * 6
    assert bottom[1].diff[0] == 0.0


@pytest.mark.parametrize("param,settings", [
    ("operation: PROD", (1e-2, 1e-3)),
    ("operation: PROD stable_prod_grad: false", (1e-2, 1e-3)),
    ("operation: SUM", (1e-2, 1e-3)),
    ("operation: SUM coeff: 1 coeff: -0.5 coeff: 2", (1e-2, 1e-3)),
    ("operation: MAX", (1e-4, 1e-3)),
])
def test_gradient(abc, param, settings):
    layer, bottom, top = eltwise(abc, param)
    GradientChecker(*settings).check_gradient_eltwise(layer, bottom, top)


def test_errors(abc):
    with pytest.raises(NetError, match="only allowed for operation SUM"):
        eltwise(abc, "operation: PROD coeff: 1 coeff: 1 coeff: 1")
    with pytest.raises(NetError, match="one coeff per bottom"):
        eltwise(abc, "coeff: 1 coeff: 2")
    with pytest.raises(ShapeError, match="identical shapes"):
        eltwise([abc[0], abc[1][:, :2]], "")
    with pytest.raises(NetError, match="at least 2 bottom"):
        eltwise(abc[:1], "")


class TestEltwiseProdBattery(LayerTestCase):
    snippet = ('layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" '
               'eltwise_param { operation: PROD } }')
    bottom_shapes = [(2, 3, 2)] * 3
    top_shapes = [(2, 3, 2)]
    bad_bottom_shapes = [[(2, 3, 2), (2, 3, 2), (2, 2, 3)]]

    def expected_forward(self, bottoms):
        return [bottoms[0] * bottoms[1] * bottoms[2]]


class TestEltwiseSumBattery(TestEltwiseProdBattery):
    snippet = ('layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" '
               'eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 } }')

    def expected_forward(self, bottoms):
        return [bottoms[0] - 0.5 * bottoms[1] + 2 * bottoms[2]]


class TestEltwiseMaxBattery(TestEltwiseProdBattery):
    """Distinct values a step of 1 apart: no argmax switches within ±h."""
    snippet = ('layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" '
               'eltwise_param { operation: MAX } }')

    def make_bottoms(self, rng):
        return list(rng.permutation(36).reshape(3, 2, 3, 2) - 18.0)

    def expected_forward(self, bottoms):
        return [np.maximum(np.maximum(bottoms[0], bottoms[1]), bottoms[2])]
