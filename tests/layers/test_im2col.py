"""im2col/col2im: Caffe's test_im2col_layer.cpp index relations (spec caffe.md §4.4), kernels vs loops."""
import numpy as np
import pytest

from crfrnn_np.config import PARALLEL_MIN_WORK
from crfrnn_np.layers.im2col import (col2im_2d, col2im_nd, conv_out_shape, im2col_2d,
                                     im2col_nd, im2col_reference)


@pytest.fixture
def bottom(rng):
    return rng.standard_normal((2, 3, 6, 5))


def test_setup_shape_dilated(rng):
    x = rng.standard_normal((3, 10, 11))
    assert conv_out_shape((10, 11), (3, 3), (0, 0), (2, 2), (3, 3)) == (2, 3)
    col = im2col_2d(x, (3, 3), (0, 0), (2, 2), (3, 3), (2, 3))
    assert col.shape == (27, 6)


def test_forward_index_relation(bottom):
    out = conv_out_shape((6, 5), (3, 3), (0, 0), (2, 2), (1, 1))
    assert out == (2, 2)
    col = im2col_2d(bottom[0], (3, 3), (0, 0), (2, 2), (1, 1), out)
    assert col.shape == (27, 4)
    for c in range(27):
        assert col[c, 0] == bottom[0, c // 9, (c // 3) % 3, c % 3]


def test_rect_index_relation(bottom):
    out = conv_out_shape((6, 5), (5, 3), (0, 0), (2, 2), (1, 1))
    assert out == (1, 2)
    col = im2col_2d(bottom[0], (5, 3), (0, 0), (2, 2), (1, 1), out)
    assert col.shape == (45, 2)
    for c in range(45):
        assert col[c, 0] == bottom[0, c // 15, (c // 3) % 5, c % 3]


GEOMETRIES = [
    ((3, 6, 5), (3, 3), (0, 0), (2, 2), (1, 1)),
    ((2, 10, 9), (3, 3), (0, 0), (2, 2), (3, 3)),
    ((2, 7, 8), (3, 2), (1, 2), (2, 1), (1, 2)),
    ((1, 5, 5), (4, 4), (3, 3), (3, 2), (1, 1)),
    ((8, 40, 36), (3, 3), (1, 1), (1, 1), (1, 1)),
    # stride 1, dilation 1: the row-slice kernel (padding wider than the kernel, as FCN's conv1_1 pad 100)
    ((2, 5, 6), (3, 3), (4, 4), (1, 1), (1, 1)),
    ((3, 4, 7), (2, 5), (0, 2), (1, 1), (1, 1)),
    ((8, 30, 33), (5, 2), (3, 0), (1, 1), (1, 1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel,pad,stride,dilation", GEOMETRIES)
def test_kernels_match_loop_reference(rng, dtype, shape, kernel, pad, stride, dilation):
    x = rng.standard_normal(shape).astype(dtype)
    out = conv_out_shape(shape[1:], kernel, pad, stride, dilation)
    ref = im2col_reference(x, kernel, pad, stride, dilation)
    assert ref.shape == (shape[0] * kernel[0] * kernel[1], out[0] * out[1])
    np.testing.assert_array_equal(im2col_2d(x, kernel, pad, stride, dilation, out), ref)
    np.testing.assert_array_equal(im2col_nd(x, kernel, pad, stride, dilation), ref)
    bands = [im2col_2d(x, kernel, pad, stride, dilation, out, rows=(r, min(r + 2, out[0])))
             for r in range(0, out[0], 2)]
    np.testing.assert_array_equal(np.concatenate(bands, axis=1), ref)


def test_geometries_include_the_parallel_kernels():
    """The stride-1 kernel's parallel driver runs above (its serial one on the small geometries)."""
    for shape, kernel, pad, stride, dilation in (GEOMETRIES[4], GEOMETRIES[-1]):
        assert stride == dilation == (1, 1)
        out = conv_out_shape(shape[1:], kernel, pad, stride, dilation)
        assert shape[0] * kernel[0] * kernel[1] * out[0] * out[1] >= PARALLEL_MIN_WORK


@pytest.mark.parametrize("shape,kernel,pad,stride,dilation", GEOMETRIES)
def test_col2im_is_the_adjoint(rng, shape, kernel, pad, stride, dilation):
    """<im2col(x), c> == <x, col2im(c)>, for the whole image and band by band."""
    x = rng.standard_normal(shape)
    out = conv_out_shape(shape[1:], kernel, pad, stride, dilation)
    c = rng.standard_normal((shape[0] * kernel[0] * kernel[1], out[0] * out[1]))
    lhs = np.vdot(im2col_reference(x, kernel, pad, stride, dilation), c)
    img = np.zeros(shape)
    col2im_2d(c, kernel, pad, stride, dilation, out, img)
    np.testing.assert_allclose(np.vdot(x, img), lhs, rtol=1e-12)
    nd = np.zeros(shape)
    col2im_nd(c, kernel, pad, stride, dilation, nd)
    np.testing.assert_allclose(nd, img, atol=1e-12)
    banded = np.zeros(shape)
    for r in range(out[0]):
        col2im_2d(np.ascontiguousarray(c[:, r * out[1]:(r + 1) * out[1]]), kernel, pad, stride, dilation, out,
                  banded, rows=(r, r + 1))
    np.testing.assert_allclose(banded, img, atol=1e-12)


def test_nd_3d_matches_loop_reference(rng):
    x = rng.standard_normal((2, 5, 6, 4))
    geom = ((3, 2, 2), (1, 0, 1), (2, 1, 2), (1, 2, 1))
    ref = im2col_reference(x, *geom)
    assert ref.shape == (2 * 12, 3 * 4 * 3)
    np.testing.assert_array_equal(im2col_nd(x, *geom), ref)


@pytest.mark.parametrize("stride,dilation", [((1, 1), (1, 1)), ((2, 1), (1, 1)), ((1, 1), (1, 2))])
def test_parallel_kernels_match_loop_reference(rng, stride, dilation):
    x = rng.standard_normal((16, 37, 29)).astype(np.float32)
    kernel, pad = (3, 4), (2, 1)
    out = conv_out_shape(x.shape[1:], kernel, pad, stride, dilation)
    assert 16 * 12 * out[0] * out[1] >= PARALLEL_MIN_WORK
    ref = im2col_reference(x, kernel, pad, stride, dilation)
    np.testing.assert_array_equal(im2col_2d(x, kernel, pad, stride, dilation, out), ref)
    half = out[0] // 2
    col = np.full((16 * 12, (out[0] - half) * out[1]), np.nan, np.float32)
    im2col_2d(x, kernel, pad, stride, dilation, out, rows=(half, out[0]), col=col)
    np.testing.assert_array_equal(col, ref[:, half * out[1]:])
