"""InnerProduct: shapes (spec caffe.md §2), forward against NumPy, transpose, axis, errors, gradients."""
import numpy as np
import pytest

from crfrnn_np.errors import Error, ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer

GAUSS = 'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" }'


def ip_layer(params, bottom, dtype=np.float64, filler=GAUSS):
    text = 'name: "ip" type: "InnerProduct" inner_product_param { %s %s }' % (params, filler)
    return make_layer(text, [bottom], dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_numpy(rng, dtype):
    x = rng.standard_normal((2, 3, 4, 5))
    layer, b, t = ip_layer("num_output: 10", x, dtype)
    assert layer.blobs[0].shape == (10, 60) and layer.blobs[1].shape == (10,)
    layer.forward(b, t)
    assert t[0].shape == (2, 10) and t[0].data.dtype == dtype
    w, bias = layer.blobs[0].data.astype(np.float64), layer.blobs[1].data.astype(np.float64)
    ref = b[0].data.astype(np.float64).reshape(2, 60) @ w.T + bias
    np.testing.assert_allclose(t[0].data, ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_transpose_stores_the_transposed_weight(rng):
    x = rng.standard_normal((3, 7))
    plain, pb, pt = ip_layer("num_output: 4", x)
    trans, tb, tt = ip_layer("num_output: 4 transpose: true", x)
    assert trans.blobs[0].shape == (7, 4)
    trans.blobs[0].data[...] = plain.blobs[0].data.T
    trans.blobs[1].data[...] = plain.blobs[1].data
    plain.forward(pb, pt)
    trans.forward(tb, tt)
    np.testing.assert_allclose(tt[0].data, pt[0].data, atol=1e-12)
    dy = rng.standard_normal((3, 4))
    for layer, b, t in ((plain, pb, pt), (trans, tb, tt)):
        t[0].diff[...] = dy
        layer.backward(t, [True], b)
    np.testing.assert_allclose(trans.blobs[0].diff, plain.blobs[0].diff.T, atol=1e-12)
    np.testing.assert_allclose(tb[0].diff, pb[0].diff, atol=1e-12)


def test_axis_keeps_leading_dims(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    layer, b, t = ip_layer("num_output: 6 axis: 2 bias_term: false", x)
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == (6, 20)
    layer.forward(b, t)
    assert t[0].shape == (2, 3, 6)
    np.testing.assert_allclose(t[0].data, x.reshape(2, 3, 20) @ layer.blobs[0].data.T, atol=1e-12)
    layer, b, t = ip_layer("num_output: 6 axis: -1", x)
    assert t[0].shape == (2, 3, 4, 6)


def test_reshape_batch_change_and_size_mismatch(rng):
    layer, b, t = ip_layer("num_output: 3", rng.standard_normal((2, 4, 2)))
    b[0].reshape((5, 8))
    layer.reshape(b, t)
    assert t[0].shape == (5, 3)
    b[0].reshape((5, 9))
    with pytest.raises(ShapeError, match=r"5 9 \(45\).*need 8"):
        layer.reshape(b, t)


def test_zero_outputs_is_an_error():
    with pytest.raises(Error, match="num_output"):
        ip_layer("num_output: 0", np.zeros((2, 3)))


def test_gradient(rng):
    layer, b, t = ip_layer("num_output: 10", rng.standard_normal((2, 3, 2, 2)))
    GradientChecker(1e-2, 1e-3).check_gradient_exhaustive(layer, b, t)


def test_gradient_transpose(rng):
    layer, b, t = ip_layer("num_output: 4 transpose: true", rng.standard_normal((3, 5)))
    GradientChecker(1e-2, 1e-3).check_gradient_exhaustive(layer, b, t)


def test_parameter_diffs_accumulate_bottom_diff_overwritten(rng):
    layer, b, t = ip_layer("num_output: 2", rng.standard_normal((3, 4)))
    layer.forward(b, t)
    t[0].diff[...] = 1.0
    b[0].diff[...] = 123.0
    layer.backward(t, [True], b)
    w_once, dx = layer.blobs[0].diff.copy(), b[0].diff.copy()
    np.testing.assert_allclose(dx, np.ones((3, 2)) @ layer.blobs[0].data)
    layer.backward(t, [True], b)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * w_once)
    np.testing.assert_allclose(layer.blobs[1].diff, [6.0, 6.0])
    np.testing.assert_allclose(b[0].diff, dx)


class TestInnerProductBattery(LayerTestCase):
    snippet = ('layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { '
               'num_output: 3 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } } }')
    bottom_shapes = [(2, 2, 3)]
    top_shapes = [(2, 3)]
    gradient = "exhaustive"
    bad_bottom_shapes = [[(6,)]]                                    # no axis 1
    bad_reshape_shapes = [[(2, 2, 4)]]                              # other row length than the weights
