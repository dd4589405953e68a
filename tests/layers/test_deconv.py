"""Deconvolution: Caffe's test_deconvolution_layer.cpp (spec caffe.md §4.3), adjointness, bilinear upsampling."""
import numpy as np
import pytest

from crfrnn_np.errors import ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer

GAUSS = 'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" }'


def layer_of(kind, params, bottoms, dtype=np.float64, filler=GAUSS):
    text = 'name: "%s" type: "%s" convolution_param { %s %s }' % (kind.lower(), kind, params, filler)
    return make_layer(text, bottoms, dtype=dtype, num_top=len(bottoms))


def naive_deconv(x, w, b, stride, pad, group):
    """Scatter form: every input element adds ``x * w`` to a kernel-sized patch of the output."""
    N, C, H, W = x.shape
    _, Og, kh, kw = w.shape
    oh = stride[0] * (H - 1) + kh - 2 * pad[0]
    ow = stride[1] * (W - 1) + kw - 2 * pad[1]
    Cg = C // group
    full = np.zeros((N, Og * group, oh + 2 * pad[0], ow + 2 * pad[1]))
    for n in range(N):
        for c in range(C):
            g = c // Cg
            for y in range(H):
                for x_ in range(W):
                    full[n, g * Og:(g + 1) * Og, y * stride[0]:y * stride[0] + kh,
                         x_ * stride[1]:x_ * stride[1] + kw] += x[n, c, y, x_] * w[c]
    out = full[:, :, pad[0]:pad[0] + oh, pad[1]:pad[1] + ow]
    return out + (b.reshape(1, -1, 1, 1) if b is not None else 0)


def test_setup_shapes(rng):
    bottoms = [rng.standard_normal((2, 3, 6, 4))] * 2
    layer, _, top = layer_of("Deconvolution", "num_output: 4 kernel_size: 3 stride: 2", bottoms)
    assert [t.shape for t in top] == [(2, 4, 13, 9)] * 2
    assert layer.blobs[0].shape == (3, 4, 3, 3) and layer.blobs[1].shape == (4,)
    layer, _, top = layer_of("Deconvolution", "num_output: 3 kernel_size: 3 stride: 2 group: 3", bottoms)
    assert [t.shape for t in top] == [(2, 3, 13, 9)] * 2
    assert layer.blobs[0].shape == (3, 1, 3, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_simple_deconvolution_fixed_values(dtype):
    ones = np.ones((2, 3, 6, 4))
    layer, bottom, top = layer_of("Deconvolution", "num_output: 4 kernel_size: 3 stride: 2", [ones, ones],
                                  dtype=dtype, filler='weight_filler { type: "constant" value: 1 } '
                                                      'bias_filler { type: "constant" value: 0.1 }')
    layer.forward(bottom, top)
    row_a = [3.1, 3.1, 6.1, 3.1, 6.1, 3.1, 6.1, 3.1, 3.1]
    row_b = [6.1, 6.1, 12.1, 6.1, 12.1, 6.1, 12.1, 6.1, 6.1]
    plane = np.array([row_b if h in (2, 4, 6, 8, 10) else row_a for h in range(13)])
    for t in top:
        assert t.shape == (2, 4, 13, 9)
        np.testing.assert_allclose(t.data, np.broadcast_to(plane, (2, 4, 13, 9)), atol=1e-4)


@pytest.mark.parametrize("params,geom", [
    ("num_output: 4 kernel_size: 3 stride: 2", ((2, 2), (0, 0), 1)),
    ("num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0 group: 2",
     ((2, 3), (1, 0), 2)),
])
def test_forward_matches_scatter_reference(rng, params, geom):
    x = rng.standard_normal((2, 4, 5, 4))
    layer, bottom, top = layer_of("Deconvolution", params, [x])
    layer.forward(bottom, top)
    ref = naive_deconv(x, layer.blobs[0].data, layer.blobs[1].data, *geom)
    assert top[0].shape == ref.shape
    np.testing.assert_allclose(top[0].data, ref, atol=1e-10)


@pytest.mark.parametrize("geometry,shape", [
    ("kernel_size: 3 stride: 2", (2, 4, 9, 11)),
    ("kernel_h: 3 kernel_w: 4 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 2 dilation: 2", (2, 4, 9, 12)),
    ("kernel_size: 3 kernel_size: 2 kernel_size: 2 stride: 2 pad: 1", (2, 4, 9, 10, 8)),
])
def test_adjoint_of_convolution(rng, geometry, shape):
    """<conv(x; W), y> == <x, deconv(y; W)> with one weight tensor, group 2 (spec caffe.md §3.2).

    The sizes make ``in + 2*pad - extent`` a multiple of the stride, so the deconvolution's output size
    formula gives back the convolution's input size.
    """
    x = rng.standard_normal(shape)
    conv, cb, ct = layer_of("Convolution", "num_output: 6 group: 2 bias_term: false " + geometry, [x])
    conv.forward(cb, ct)
    y = rng.standard_normal(ct[0].shape)
    deconv, db, dt = layer_of("Deconvolution", "num_output: 4 group: 2 bias_term: false " + geometry, [y])
    assert deconv.blobs[0].shape == conv.blobs[0].shape
    deconv.blobs[0].data[...] = conv.blobs[0].data
    deconv.forward(db, dt)
    assert dt[0].shape == x.shape
    np.testing.assert_allclose(np.vdot(ct[0].data, y), np.vdot(x, dt[0].data), rtol=1e-10)


def test_bilinear_upsampling_k16_s8(rng):
    """CRF-RNN's upsampling: bilinear weights reproduce constant and linear inputs in the interior."""
    ramp = np.add.outer(np.arange(5.0), 2 * np.arange(6.0))
    x = np.stack([np.ones((5, 6)), ramp])[None]
    layer, bottom, top = layer_of("Deconvolution", "num_output: 2 group: 2 bias_term: false kernel_size: 16 "
                                  "stride: 8", [x], filler='weight_filler { type: "bilinear" }')
    layer.forward(bottom, top)
    assert top[0].shape == (1, 2, 48, 56)
    inner = (slice(8, 40), slice(8, 48))
    np.testing.assert_allclose(top[0].data[0, 0][inner], 1.0, atol=1e-12)
    pos = (np.arange(48) - 7.5) / 8
    expect = np.add.outer(pos, 2 * (np.arange(56) - 7.5) / 8)
    np.testing.assert_allclose(top[0].data[0, 1][inner], expect[inner], atol=1e-12)


def test_bilinear_full_channel_mix_shape(rng):
    """The deploy net's ``bigscore`` form (no group): weight 21x21x16x16, every pair bilinear."""
    x = rng.standard_normal((1, 21, 3, 4)).astype(np.float32)
    layer, bottom, top = layer_of("Deconvolution", "num_output: 21 bias_term: false kernel_size: 16 stride: 8",
                                  [x], dtype=np.float32, filler='weight_filler { type: "bilinear" }')
    layer.forward(bottom, top)
    assert layer.blobs[0].shape == (21, 21, 16, 16) and top[0].shape == (1, 21, 32, 40)
    single = np.zeros((1, 1, 3, 4))
    single[0, 0] = x[0].sum(axis=0)
    one, ob, ot = layer_of("Deconvolution", "num_output: 1 bias_term: false kernel_size: 16 stride: 8",
                           [single], filler='weight_filler { type: "bilinear" }')
    one.forward(ob, ot)
    for c in range(21):
        np.testing.assert_allclose(top[0].data[0, c], ot[0].data[0, 0], atol=1e-4)


def test_empty_output_is_a_shape_error():
    with pytest.raises(ShapeError, match="1 1 1 1"):
        layer_of("Deconvolution", "num_output: 1 kernel_size: 2 pad: 1", [np.zeros((1, 1, 1, 1))])


@pytest.mark.parametrize("params,shape", [
    ("num_output: 1 kernel_size: 2", (2, 3, 4, 3)),
    ("num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2", (1, 2, 3, 3)),
])
def test_gradient(rng, params, shape):
    layer, bottom, top = layer_of("Deconvolution", params, [rng.standard_normal(shape) for _ in range(2)])
    GradientChecker(1e-2, 1e-3).check_gradient(layer, bottom, top)


def test_gradient_exhaustive_small(rng):
    layer, bottom, top = layer_of("Deconvolution", "num_output: 2 kernel_size: 2 stride: 2 pad: 1",
                                  [rng.standard_normal((1, 2, 2, 2))])
    GradientChecker(1e-2, 1e-3).check_gradient_exhaustive(layer, bottom, top)


class TestDeconvolutionBattery(LayerTestCase):
    """3x3 kernel, stride 2, pad 1: 3x3 -> 5x5."""
    snippet = ('layer { name: "deconv" type: "Deconvolution" bottom: "x" top: "y" convolution_param { '
               'num_output: 2 kernel_size: 3 stride: 2 pad: 1 '
               'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } } }')
    bottom_shapes = [(2, 2, 3, 3)]
    top_shapes = [(2, 2, 5, 5)]
    bad_reshape_shapes = [[(2, 3, 3, 3)], [(2, 2, 3)]]              # other channel count; other axis count
