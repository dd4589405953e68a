"""Convolution: Caffe's test_convolution_layer.cpp cases against a naive loop reference (spec caffe.md §4.2)."""
import itertools

import numpy as np
import pytest

import crfrnn_np.layers.conv as conv_module
from crfrnn_np.errors import Error, ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer

GAUSS = 'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 }'


def conv_layer(params, bottoms, dtype=np.float64, filler=GAUSS):
    text = 'name: "conv" type: "Convolution" convolution_param { %s %s }' % (params, filler)
    return make_layer(text, bottoms, dtype=dtype, num_top=len(bottoms))


def naive_conv(x, w, b, stride, pad, dilation, group):
    """The 7-loop reference of Caffe's ``caffe_conv`` (2-D), written out element by element."""
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    oh = (H + 2 * pad[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (W + 2 * pad[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    Og = O // group
    y = np.zeros((N, O, oh, ow))
    for n in range(N):
        for g in range(group):
            for o in range(Og):
                for k in range(Cg):
                    for yy in range(oh):
                        for xx in range(ow):
                            for r in range(kh):
                                for q in range(kw):
                                    iy = yy * stride[0] - pad[0] + r * dilation[0]
                                    ix = xx * stride[1] - pad[1] + q * dilation[1]
                                    if 0 <= iy < H and 0 <= ix < W:
                                        y[n, g * Og + o, yy, xx] += (x[n, g * Cg + k, iy, ix]
                                                                     * w[g * Og + o, k, r, q])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def naive_conv_nd(x, w, b, stride, dilation):
    """N-D reference (no pad, group 1): sum over kernel offsets of strided, dilated input slices."""
    N = x.shape[0]
    O, C = w.shape[:2]
    kernel = w.shape[2:]
    ins = x.shape[2:]
    out = [(i - (d * (k - 1) + 1)) // s + 1 for i, k, s, d in zip(ins, kernel, stride, dilation)]
    y = np.zeros((N, O) + tuple(out))
    for off in itertools.product(*[range(k) for k in kernel]):
        sl = tuple(slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in zip(off, dilation, stride, out))
        patch = x[(slice(None), slice(None)) + sl]
        y += np.einsum("nc...,oc->no...", patch, w[(slice(None), slice(None)) + off])
    return y + b.reshape((1, -1) + (1,) * len(kernel))


@pytest.fixture
def fixture_bottoms(rng):
    return [rng.standard_normal((2, 3, 6, 4)), rng.standard_normal((2, 3, 6, 4))]


def test_setup_shapes(fixture_bottoms):
    layer, _, top = conv_layer("num_output: 4 kernel_size: 3 stride: 2", fixture_bottoms)
    assert [t.shape for t in top] == [(2, 4, 2, 1)] * 2
    assert layer.blobs[0].shape == (4, 3, 3, 3) and layer.blobs[1].shape == (4,)
    layer, _, top = conv_layer("num_output: 3 kernel_size: 3 stride: 2 group: 3", fixture_bottoms)
    assert [t.shape for t in top] == [(2, 3, 2, 1)] * 2
    assert layer.blobs[0].shape == (3, 1, 3, 3)
    assert layer.param_propagate_down == [True, True]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("shape,params,geom", [
    ((2, 3, 6, 4), "num_output: 4 kernel_size: 3 stride: 2", ((2, 2), (0, 0), (1, 1), 1)),
    ((2, 3, 8, 7), "num_output: 4 kernel_size: 3 dilation: 2", ((1, 1), (0, 0), (2, 2), 1)),
    ((2, 3, 6, 4), "num_output: 3 kernel_size: 3 stride: 2 group: 3", ((2, 2), (0, 0), (1, 1), 3)),
    ((2, 6, 9, 8), "num_output: 6 group: 3 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 2 pad_w: 1 "
                   "dilation: 2 dilation: 3", ((2, 1), (2, 1), (2, 3), 3)),
    ((1, 4, 7, 9), "num_output: 2 kernel_size: 3 kernel_size: 2 stride: 2 stride: 3 pad: 1 pad: 2 group: 2",
     ((2, 3), (1, 2), (1, 1), 2)),
    ((2, 3, 7, 6), "num_output: 4 kernel_size: 3 pad: 1", ((1, 1), (1, 1), (1, 1), 1)),
    ((1, 4, 5, 6), "num_output: 4 kernel_h: 2 kernel_w: 3 pad_h: 3 pad_w: 0 group: 2", ((1, 1), (3, 0), (1, 1), 2)),
])
def test_forward_matches_naive_reference(rng, dtype, tol, shape, params, geom):
    x = rng.standard_normal(shape)
    layer, bottom, top = conv_layer(params, [x, 2 * x], dtype=dtype)
    layer.forward(bottom, top)
    stride, pad, dilation, group = geom
    w, b = layer.blobs[0].data.astype(np.float64), layer.blobs[1].data.astype(np.float64)
    for t, b_in in zip(top, bottom):
        ref = naive_conv(b_in.data.astype(np.float64), w, b, stride, pad, dilation, group)
        assert t.data.dtype == dtype and t.shape == ref.shape
        np.testing.assert_allclose(t.data, ref, atol=tol, rtol=tol)


def test_1x1_convolution(rng):
    x = rng.standard_normal((2, 3, 6, 4))
    layer, bottom, top = conv_layer("num_output: 4 kernel_size: 1", [x],
                                    filler='weight_filler { type: "gaussian" } bias_filler { type: "constant" '
                                           'value: 0.1 }')
    layer.forward(bottom, top)
    assert top[0].shape == (2, 4, 6, 4)
    assert np.all(layer.blobs[1].data == np.float32(0.1))
    ref = np.einsum("nchw,oc->nohw", x, layer.blobs[0].data[:, :, 0, 0]) + np.float32(0.1)
    np.testing.assert_allclose(top[0].data, ref, atol=1e-12)


def test_0d_convolution_is_per_position_inner_product(rng):
    x = rng.standard_normal((2, 3, 6, 4))
    layer, bottom, top = conv_layer("num_output: 3 axis: 3", [x])
    layer.forward(bottom, top)
    assert top[0].shape == (2, 3, 6, 3) and layer.blobs[0].shape == (3, 4)
    ref = x @ layer.blobs[0].data.T + layer.blobs[1].data
    np.testing.assert_allclose(top[0].data, ref, atol=1e-12)


@pytest.mark.parametrize("shape,params,expect,dilation", [
    ((2, 3, 5, 6, 4), "num_output: 4 kernel_size: 3 stride: 2", (2, 4, 2, 2, 1), 1),
    ((2, 3, 6, 7, 8), "num_output: 4 kernel_size: 3 dilation: 2", (2, 4, 2, 3, 4), 2),
])
def test_3d_convolution(rng, shape, params, expect, dilation):
    x = rng.standard_normal(shape)
    layer, bottom, top = conv_layer(params, [x])
    layer.forward(bottom, top)
    assert top[0].shape == expect
    stride = 2 if "stride" in params else 1
    ref = naive_conv_nd(x, layer.blobs[0].data, layer.blobs[1].data, (stride,) * 3, (dilation,) * 3)
    np.testing.assert_allclose(top[0].data, ref, atol=1e-10)


def _forward_backward(layer, bottom, top, dy):
    layer.forward(bottom, top)
    for b in layer.blobs:
        b.diff[...] = 0
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    return top[0].data.copy(), bottom[0].diff.copy(), layer.blobs[0].diff.copy()


def test_nd_im2col_against_2d(rng):
    x = rng.standard_normal((3, 18, 22, 26))
    params = "num_output: 12 group: 6 kernel_h: 11 kernel_w: 13 bias_term: false"
    nd = conv_layer(params + " force_nd_im2col: true", [x], filler='weight_filler { type: "gaussian" }')
    two = conv_layer(params, [x], filler='weight_filler { type: "gaussian" }')
    two[0].blobs[0].data[...] = nd[0].blobs[0].data
    dy = rng.standard_normal(nd[2][0].shape)
    for a, b in zip(_forward_backward(*nd, dy), _forward_backward(*two, dy)):
        np.testing.assert_allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("params", ["num_output: 6 kernel_size: 3 pad: 2 stride: 2 dilation: 2 group: 2",
                                    "num_output: 6 kernel_size: 3 pad: 2 group: 2"])
def test_banded_column_buffer_matches_whole(rng, monkeypatch, params):
    x = rng.standard_normal((2, 4, 13, 11))
    whole = conv_layer(params, [x])
    monkeypatch.setattr(conv_module, "COL_BUFFER_BYTES", 2 * 18 * 6 * 8)
    banded = conv_layer(params, [x])
    assert len(banded[0]._geometry.bands) > 2 and len(whole[0]._geometry.bands) == 1
    for b0, b1 in zip(whole[0].blobs, banded[0].blobs):
        b1.data[...] = b0.data
    dy = rng.standard_normal(whole[2][0].shape)
    for a, b in zip(_forward_backward(*whole, dy), _forward_backward(*banded, dy)):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_banded_forward_matches_naive_reference(rng, monkeypatch):
    """Stride-1 kernel and the per-band bias, with bands of 2 output rows."""
    x = rng.standard_normal((2, 3, 9, 8))
    monkeypatch.setattr(conv_module, "COL_BUFFER_BYTES", 2 * 27 * 8 * 8)
    layer, bottom, top = conv_layer("num_output: 5 kernel_size: 3 pad: 1", [x])
    assert len(layer._geometry.bands) == 5
    layer.forward(bottom, top)
    ref = naive_conv(x, layer.blobs[0].data, layer.blobs[1].data, (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(top[0].data, ref, atol=1e-12)


def test_1x1_convolution_larger_than_the_column_buffer(rng, monkeypatch):
    """A 1x1 convolution reads the image in place: one band, whatever COL_BUFFER_BYTES says."""
    x = rng.standard_normal((2, 6, 10, 7))
    monkeypatch.setattr(conv_module, "COL_BUFFER_BYTES", 6 * 7 * 8)
    layer, bottom, top = conv_layer("num_output: 3 kernel_size: 1", [x])
    layer.forward(bottom, top)
    ref = (np.einsum("nchw,oc->nohw", x, layer.blobs[0].data[:, :, 0, 0])
           + layer.blobs[1].data.reshape(1, -1, 1, 1))
    np.testing.assert_allclose(top[0].data, ref, atol=1e-12)
    dy = rng.standard_normal(top[0].shape)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, np.einsum("nohw,oc->nchw", dy, layer.blobs[0].data[:, :, 0, 0]),
                               atol=1e-12)
    np.testing.assert_allclose(layer.blobs[0].diff[:, :, 0, 0], np.einsum("nohw,nchw->oc", dy, x), atol=1e-12)


def test_sobel_separable(rng):
    x = rng.standard_normal((2, 3, 6, 4))
    full, fb, ft = conv_layer("num_output: 1 bias_term: false kernel_size: 3 stride: 2", [x], filler="")
    full.blobs[0].data[...] = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    full.forward(fb, ft)
    assert ft[0].shape == (2, 1, 2, 1)
    a, ab, at = conv_layer("num_output: 1 bias_term: false kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1",
                           [x], filler="")
    a.blobs[0].data[...] = np.array([1, 2, 1]).reshape(1, 1, 3, 1)
    a.forward(ab, at)
    assert at[0].shape == (2, 1, 2, 4)
    b, bb, bt = conv_layer("num_output: 1 bias_term: false kernel_h: 1 kernel_w: 3 stride_h: 1 stride_w: 2",
                           [at[0].data], filler="")
    b.blobs[0].data[...] = np.array([-1, 0, 1]).reshape(1, 1, 1, 3)
    b.forward(bb, bt)
    assert bt[0].shape == (2, 1, 2, 1)
    np.testing.assert_allclose(ft[0].data, bt[0].data, atol=1e-4)


def test_reshape_follows_input_shape(rng):
    params = "num_output: 3 kernel_size: 3 pad: 1 stride: 2"
    layer, bottom, top = conv_layer(params, [rng.standard_normal((1, 2, 7, 5))])
    x = rng.standard_normal((2, 2, 10, 12))
    bottom[0].reshape(x.shape)
    bottom[0].data = x
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert top[0].shape == (2, 3, 5, 6)
    ref = naive_conv(x, layer.blobs[0].data, layer.blobs[1].data, (2, 2), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(top[0].data, ref, atol=1e-10)


def test_bottom_smaller_than_kernel_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"conv.*1 3 2 2.*padded size 2 < kernel extent 5"):
        conv_layer("num_output: 2 kernel_size: 5", [np.zeros((1, 3, 2, 2))])


@pytest.mark.parametrize("params,message", [
    ("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", "not both"),
    ("num_output: 2 kernel_size: 3 pad: 1 pad_h: 1", "not both"),
    ("num_output: 2 kernel_size: 3 pad: 1 pad: 1 pad: 1", "once per spatial axis"),
    ("num_output: 2", "kernel_size"),
    ("num_output: 2 kernel_h: 3", "nonzero"),
    ("num_output: 2 kernel_size: 3 stride: 0", "nonzero"),
    ("num_output: 2 kernel_size: 3 group: 2", "multiple of group"),
    ("num_output: 0 kernel_size: 3", "num_output"),
])
def test_parameter_errors(params, message):
    with pytest.raises(Error, match=message):
        conv_layer(params, [np.zeros((1, 3, 6, 6))])


def test_hw_form_needs_2d():
    with pytest.raises(Error, match="2-D"):
        conv_layer("num_output: 2 kernel_h: 3 kernel_w: 3", [np.zeros((1, 3, 6, 6, 6))])


def test_channel_change_is_a_shape_error(rng):
    layer, bottom, top = conv_layer("num_output: 2 kernel_size: 3", [np.zeros((1, 3, 6, 6))])
    bottom[0].reshape((1, 4, 6, 6))
    with pytest.raises(ShapeError, match="1 4 6 6"):
        layer.reshape(bottom, top)


@pytest.mark.parametrize("shape,params", [
    ((2, 3, 6, 4), "num_output: 2 kernel_size: 3 stride: 2"),
    ((2, 3, 5, 6), "num_output: 2 kernel_size: 3 dilation: 2"),
    ((2, 3, 5, 6, 4), "num_output: 2 kernel_size: 3 stride: 2"),
    ((2, 3, 6, 4), "num_output: 2 kernel_size: 1"),
    ((2, 3, 6, 4), "num_output: 3 kernel_size: 3 stride: 2 group: 3 pad: 1"),
])
def test_gradient(rng, shape, params):
    x = rng.standard_normal(shape)
    layer, bottom, top = conv_layer(params, [x, rng.standard_normal(shape)])
    GradientChecker(1e-2, 1e-3).check_gradient(layer, bottom, top)


def test_gradient_exhaustive_small(rng):
    layer, bottom, top = conv_layer("num_output: 2 kernel_size: 2 stride: 2 pad: 1",
                                    [rng.standard_normal((1, 2, 3, 3))])
    GradientChecker(1e-2, 1e-3).check_gradient_exhaustive(layer, bottom, top)


def test_parameter_diffs_accumulate(rng):
    layer, bottom, top = conv_layer("num_output: 2 kernel_size: 3", [rng.standard_normal((1, 2, 5, 5))])
    layer.forward(bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    once = [b.diff.copy() for b in layer.blobs]
    dx_once = bottom[0].diff.copy()
    layer.backward(top, [True], bottom)
    for b, d in zip(layer.blobs, once):
        np.testing.assert_allclose(b.diff, 2 * d)
    np.testing.assert_allclose(bottom[0].diff, dx_once)
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * 9.0)


class TestConvolutionBattery(LayerTestCase):
    """3x3 kernel, stride 2, pad 1: 5x5 -> 3x3."""
    snippet = ('layer { name: "conv" type: "Convolution" bottom: "x" top: "y" convolution_param { '
               'num_output: 3 kernel_size: 3 stride: 2 pad: 1 '
               'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } } }')
    bottom_shapes = [(2, 2, 5, 5)]
    top_shapes = [(2, 3, 3, 3)]
    bad_reshape_shapes = [[(2, 3, 5, 5)], [(2, 2, 5)]]              # other channel count; other axis count
