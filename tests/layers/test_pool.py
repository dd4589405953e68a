"""Pooling: Caffe's test_pooling_layer.cpp fixed values (spec caffe.md §4.1), shape rules (§2) and gradients."""
import numpy as np
import pytest

from crfrnn_np.errors import Error, NetError, ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer

MAGIC6 = np.array([[35, 1, 6, 26, 19, 24],
                   [3, 32, 7, 21, 23, 25],
                   [31, 9, 2, 22, 27, 20],
                   [8, 28, 33, 17, 10, 15],
                   [30, 5, 34, 12, 14, 16],
                   [4, 36, 29, 13, 18, 11]], dtype=float)


def pool_layer(params, bottom, num_top=1, dtype=np.float64):
    text = 'name: "pool" type: "Pooling" pooling_param { %s }' % params
    return make_layer(text, [bottom], dtype=dtype, num_top=num_top)


def run(params, bottom, num_top=1, dtype=np.float64):
    layer, b, t = pool_layer(params, bottom, num_top, dtype)
    layer.forward(b, t)
    return layer, b, t


def tile(plane, n, c):
    return np.broadcast_to(plane, (n, c) + plane.shape).copy()


@pytest.fixture
def gauss(rng):
    return rng.standard_normal((2, 3, 6, 5))


@pytest.mark.parametrize("params,shape", [
    ("kernel_size: 3 stride: 2", (2, 3, 3, 2)),
    ("pool: AVE kernel_size: 3 stride: 2 pad: 1", (2, 3, 4, 3)),
    ("pool: AVE global_pooling: true", (2, 3, 1, 1)),
])
def test_setup_shapes(gauss, params, shape):
    _, _, top = pool_layer(params, gauss)
    assert top[0].shape == shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_top", [1, 2])
@pytest.mark.parametrize("params,plane,expect,mask", [
    ("kernel_size: 2",
     np.array([[1, 2, 5, 2, 3], [9, 4, 1, 4, 8], [1, 2, 5, 2, 3]], dtype=float),
     [[9, 5, 5, 8], [9, 5, 5, 8]],
     [[5, 2, 2, 9], [5, 12, 12, 9]]),
    ("kernel_h: 3 kernel_w: 2", MAGIC6,
     [[35, 32, 26, 27, 27], [32, 33, 33, 27, 27], [31, 34, 34, 27, 27], [36, 36, 34, 18, 18]],
     [[0, 7, 3, 16, 16], [7, 20, 20, 16, 16], [12, 26, 26, 16, 16], [31, 31, 26, 34, 34]]),
    ("kernel_h: 2 kernel_w: 3", MAGIC6,
     [[35, 32, 26, 26], [32, 32, 27, 27], [33, 33, 33, 27], [34, 34, 34, 17], [36, 36, 34, 18]],
     [[0, 7, 3, 3], [7, 7, 16, 16], [20, 20, 20, 16], [26, 26, 26, 21], [31, 31, 26, 34]]),
])
def test_max_fixed_values(params, plane, expect, mask, num_top, dtype):
    """P1 square, P2 rect-high, P3 rect-wide; with and without the mask top; exact equality."""
    _, _, top = run(params, tile(plane, 2, 2), num_top, dtype)
    expect, mask = np.array(expect, dtype=float), np.array(mask, dtype=float)
    assert top[0].shape == (2, 2) + expect.shape
    np.testing.assert_array_equal(top[0].data, tile(expect, 2, 2))
    if num_top == 2:
        assert top[1].shape == top[0].shape and top[1].data.dtype == dtype
        np.testing.assert_array_equal(top[1].data, tile(mask, 2, 2))


@pytest.mark.parametrize("num_top", [1, 2])
def test_max_padded(num_top):
    """P4: kernel 3, stride 2, pad 2 on a 3x3 plane; the mask follows first-max-wins."""
    x = np.array([[1, 2, 4], [2, 3, 2], [4, 2, 1]], dtype=float).reshape(1, 1, 3, 3)
    _, _, top = run("kernel_size: 3 stride: 2 pad: 2", x, num_top)
    np.testing.assert_allclose(top[0].data[0, 0], [[1, 4, 4], [4, 4, 4], [4, 4, 1]], atol=1e-8)
    if num_top == 2:
        np.testing.assert_array_equal(top[1].data[0, 0], [[0, 2, 2], [6, 2, 2], [6, 6, 8]])


def test_ave_counts_padding():
    """P5: AVE kernel 3, stride 1, pad 1 of a constant 2: corners 8/9, edges 4/3, centre 2."""
    _, _, top = run("pool: AVE kernel_size: 3 stride: 1 pad: 1", np.full((1, 1, 3, 3), 2.0))
    expect = [[8 / 9, 4 / 3, 8 / 9], [4 / 3, 2, 4 / 3], [8 / 9, 4 / 3, 8 / 9]]
    np.testing.assert_allclose(top[0].data[0, 0], expect, atol=1e-5)


def test_ave_ceil_overhang_divisor():
    """Without padding, a CEIL window overhanging the edge divides by the part inside the image."""
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    _, _, top = run("pool: AVE kernel_size: 3 stride: 2", x)
    assert top[0].shape == (1, 1, 1, 2)
    np.testing.assert_allclose(top[0].data[0, 0, 0], [x[0, 0, :, 0:3].mean(), x[0, 0, :, 2:4].sum() / 6])


def test_max_ceil_overhang_cifar(rng):
    """cifar10_quick: 32x32, k3 s2 -> 16x16 under CEIL (the last window holds two columns), 15x15 under FLOOR."""
    x = rng.standard_normal((1, 2, 32, 32))
    _, _, top = run("kernel_size: 3 stride: 2", x)
    assert top[0].shape == (1, 2, 16, 16)
    np.testing.assert_array_equal(top[0].data[:, :, 15, 15], x[:, :, 30:, 30:].max(axis=(2, 3)))
    np.testing.assert_array_equal(top[0].data[:, :, 3, 4], x[:, :, 6:9, 8:11].max(axis=(2, 3)))
    _, _, top = run("kernel_size: 3 stride: 2 round_mode: FLOOR", x)
    assert top[0].shape == (1, 2, 15, 15)


def test_padding_clip_rule():
    """3x3, k3 s2 pad 2 -> 3x3; the clip drops a last window starting in the right padding."""
    _, _, top = run("kernel_size: 3 stride: 2 pad: 2", np.zeros((1, 1, 3, 3)))
    assert top[0].shape == (1, 1, 3, 3)
    _, _, top = run("kernel_size: 2 stride: 2 pad: 1", np.zeros((1, 1, 4, 4)))
    assert top[0].shape == (1, 1, 3, 3)
    _, _, top = run("kernel_size: 2 stride: 3 pad: 1", np.zeros((1, 1, 4, 4)))
    assert top[0].shape == (1, 1, 2, 2)


def test_global_pooling(gauss):
    _, _, top = run("pool: MAX global_pooling: true", gauss)
    np.testing.assert_array_equal(top[0].data[:, :, 0, 0], gauss.max(axis=(2, 3)))
    _, _, top = run("pool: AVE global_pooling: true", gauss)
    np.testing.assert_allclose(top[0].data[:, :, 0, 0], gauss.mean(axis=(2, 3)))


def test_ties_route_gradient_to_first_and_overlaps_add():
    x = np.ones((1, 1, 3, 3))
    layer, b, t = run("kernel_size: 2 stride: 1", x)
    t[0].diff[...] = 1.0
    layer.backward(t, [True], b)
    np.testing.assert_array_equal(b[0].diff[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_reshape_follows_input_shape(rng):
    layer, b, t = pool_layer("pool: AVE kernel_size: 2 stride: 2", rng.standard_normal((1, 1, 4, 4)))
    x = rng.standard_normal((2, 3, 6, 8))
    b[0].reshape(x.shape)
    b[0].data = x
    layer.reshape(b, t)
    layer.forward(b, t)
    np.testing.assert_allclose(t[0].data, x.reshape(2, 3, 3, 2, 4, 2).mean(axis=(3, 5)))


def test_large_input_parallel_path_matches_blocks(rng):
    x = rng.standard_normal((2, 16, 64, 64)).astype(np.float32)
    _, _, top = run("kernel_size: 2 stride: 2", x, dtype=np.float32)
    np.testing.assert_array_equal(top[0].data, x.reshape(2, 16, 32, 2, 32, 2).max(axis=(3, 5)))
    _, _, top = run("pool: AVE kernel_size: 2 stride: 2", x, dtype=np.float32)
    np.testing.assert_allclose(top[0].data, x.reshape(2, 16, 32, 2, 32, 2).mean(axis=(3, 5)), atol=1e-6)


@pytest.mark.parametrize("params,cls,message", [
    ("kernel_size: 3 pad: 3", NetError, "smaller than the kernel"),
    ("kernel_h: 2 kernel_w: 3 pad_h: 2 pad_w: 0", NetError, "smaller than the kernel"),
    ("pool: STOCHASTIC kernel_size: 2 pad: 1", NetError, "padding is implemented only for MAX and AVE"),
    ("pool: STOCHASTIC kernel_size: 2", NetError, "not implemented on CPU, as in Caffe"),
    ("kernel_size: 2 kernel_h: 2 kernel_w: 2", NetError, "not both"),
    ("kernel_h: 2", NetError, "both kernel_h and kernel_w"),
    ("global_pooling: true kernel_size: 2", NetError, "global_pooling"),
    ("global_pooling: true stride: 2", NetError, "global_pooling"),
    ("kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1", NetError, "pad_h"),
    ("kernel_size: 2 stride_h: 1", NetError, "stride_h"),
    ("kernel_size: 0", NetError, "positive"),
    ("kernel_size: 7", ShapeError, "1 1 5 5"),
])
def test_errors(params, cls, message):
    with pytest.raises(cls, match=message):
        pool_layer(params, np.zeros((1, 1, 5, 5)))


def test_needs_four_axes():
    with pytest.raises(ShapeError, match="4 axes"):
        pool_layer("kernel_size: 2", np.zeros((1, 5, 5)))


def test_mask_top_only_for_max():
    with pytest.raises(Error, match="mask"):
        pool_layer("pool: AVE kernel_size: 2", np.zeros((1, 1, 4, 4)), num_top=2)


# Caffe's settings: MAX (1e-4, 1e-2), AVE (1e-2, 1e-2). The exhaustive mode (every top element in turn) runs
# on one kernel shape per case; the other kernel shapes use the single objective 1/2 sum(top^2) to stay fast.
KERNELS = [(3, 3), (3, 4), (4, 3), (4, 4)]


def check(layer, b, t, kh, kw, exhaustive_for, stepsize, threshold):
    checker = GradientChecker(stepsize, threshold)
    if (kh, kw) == exhaustive_for:
        checker.check_gradient_exhaustive(layer, b, t)
    else:
        checker.check_gradient(layer, b, t)


@pytest.mark.parametrize("kh,kw", KERNELS)
def test_gradient_max_padded(gauss, kh, kw):
    layer, b, t = pool_layer("kernel_h: %d kernel_w: %d stride: 2 pad: 1" % (kh, kw), gauss)
    check(layer, b, t, kh, kw, (3, 4), 1e-4, 1e-2)


@pytest.mark.parametrize("kh,kw", KERNELS)
def test_gradient_max_with_mask_top(gauss, kh, kw):
    layer, b, t = pool_layer("kernel_h: %d kernel_w: %d stride: 2" % (kh, kw), gauss, num_top=2)
    check(layer, b, t, kh, kw, (4, 3), 1e-4, 1e-2)


@pytest.mark.parametrize("kh,kw", KERNELS)
def test_gradient_ave(gauss, kh, kw):
    layer, b, t = pool_layer("pool: AVE kernel_h: %d kernel_w: %d stride: 2" % (kh, kw), gauss)
    check(layer, b, t, kh, kw, (3, 4), 1e-2, 1e-2)


@pytest.mark.parametrize("k", [3, 4])
def test_gradient_ave_padded(gauss, k):
    layer, b, t = pool_layer("pool: AVE kernel_size: %d stride: 2 pad: 2" % k, gauss)
    check(layer, b, t, k, k, (3, 3), 1e-2, 1e-2)


class TestPoolingMaxBattery(LayerTestCase):
    """MAX over 2x2 windows with stride 2, on distinct values a step of 1 apart (no ties within ±h)."""
    snippet = ('layer { name: "pool" type: "Pooling" bottom: "x" top: "y" '
               'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }')
    bottom_shapes = [(1, 2, 4, 4)]
    top_shapes = [(1, 2, 2, 2)]
    bad_bottom_shapes = [[(1, 2, 4)]]                               # 3 axes

    def make_bottoms(self, rng):
        return [rng.permutation(32).reshape(1, 2, 4, 4) - 16.0]

    def expected_forward(self, bottoms):
        return [bottoms[0].reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5))]


class TestPoolingAveBattery(TestPoolingMaxBattery):
    """AVE over 3x3 windows, stride 2, pad 1 (the padding counts in the divisor, as in Caffe)."""
    snippet = ('layer { name: "pool" type: "Pooling" bottom: "x" top: "y" '
               'pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }')
    bottom_shapes = [(1, 2, 4, 4)]
    top_shapes = [(1, 2, 3, 3)]                                     # ceil((4 + 2 - 3) / 2) + 1
    bad_bottom_shapes = [[(1, 2, 4)]]
    make_bottoms = LayerTestCase.make_bottoms
    expected_forward = LayerTestCase.expected_forward
