"""Fillers (spec caffe.md §1.5): statistics of the random ones, exact values of constant and bilinear."""
import numpy as np
import pytest

from crfrnn_np import proto
from crfrnn_np.errors import NetError
from crfrnn_np.fillers import fill


def filler(text):
    return proto.parse(text, "FillerParameter")


def filled(shape, text, dtype=np.float64, seed=1701):
    return fill(np.zeros(shape, dtype=dtype), filler(text), rng=np.random.default_rng(seed))


def test_default_is_constant_zero():
    a = fill(np.ones((3, 4)), filler(""))
    np.testing.assert_array_equal(a, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant(dtype):
    a = filled((2, 3, 4), 'type: "constant" value: 0.25', dtype)
    assert a.dtype == dtype
    np.testing.assert_array_equal(a, 0.25)


def test_uniform_range_and_mean():
    a = filled((200, 100), 'type: "uniform" min: -2 max: 3')
    assert a.min() >= -2 and a.max() <= 3 and a.min() < -1.9 and a.max() > 2.9
    assert abs(a.mean() - 0.5) < 0.05


def test_gaussian_moments():
    a = filled((200, 100), 'type: "gaussian" mean: 1 std: 2')
    assert abs(a.mean() - 1) < 0.06 and abs(a.std() - 2) < 0.05


def test_gaussian_sparse_keeps_sparse_over_outputs():
    a = filled((100, 400), 'type: "gaussian" std: 1 sparse: 20')
    frac = np.mean(a != 0)
    p = 20 / 100
    assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / a.size)


def test_positive_unitball_rows_sum_to_one():
    a = filled((6, 3, 2, 2), 'type: "positive_unitball"')
    assert np.all(a >= 0) and np.all(a <= 1)
    np.testing.assert_allclose(a.reshape(6, -1).sum(axis=1), 1.0)


@pytest.mark.parametrize("norm,n", [("", 50 * 3 * 3), ("variance_norm: FAN_OUT", 40 * 3 * 3),
                                    ("variance_norm: AVERAGE", 45 * 3 * 3)])
def test_xavier_bounds_and_variance(norm, n):
    a = filled((40, 50, 3, 3), 'type: "xavier" ' + norm)
    bound = np.sqrt(3.0 / n)
    assert np.abs(a).max() <= bound and np.abs(a).max() > 0.99 * bound
    assert abs(a.var() - bound ** 2 / 3) < 0.03 * bound ** 2


@pytest.mark.parametrize("norm,n", [("", 50 * 9), ("variance_norm: FAN_OUT", 40 * 9)])
def test_msra_std(norm, n):
    a = filled((40, 50, 3, 3), 'type: "msra" ' + norm)
    assert abs(a.mean()) < 5 * np.sqrt(2.0 / n) / np.sqrt(a.size)
    assert abs(a.std() / np.sqrt(2.0 / n) - 1) < 0.02


def test_bilinear_kernel_4():
    """K=4: f=2, c=0.75, taps 1-|x/2-0.75| = [0.25, 0.75, 0.75, 0.25]; the kernel is their outer product."""
    a = filled((2, 3, 4, 4), 'type: "bilinear"')
    t = np.array([0.25, 0.75, 0.75, 0.25])
    for o in range(2):
        for i in range(3):
            np.testing.assert_allclose(a[o, i], np.outer(t, t), atol=1e-15)


def test_bilinear_kernel_3():
    """K=3: f=2, c=0.5, taps [0.5, 1, 0.5]."""
    a = filled((1, 1, 3, 3), 'type: "bilinear"')
    np.testing.assert_allclose(a[0, 0], np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]), atol=1e-15)


def test_bilinear_needs_square_4d():
    with pytest.raises(NetError, match="bilinear"):
        filled((1, 1, 3, 4), 'type: "bilinear"')
    with pytest.raises(NetError, match="bilinear"):
        filled((3, 3), 'type: "bilinear"')


def test_unknown_type_is_an_error():
    with pytest.raises(NetError, match="unknown filler type 'gausian'"):
        filled((2, 2), 'type: "gausian"')


def test_sparse_only_for_gaussian():
    with pytest.raises(NetError, match="sparse"):
        filled((2, 2), 'type: "uniform" sparse: 1')


def test_shared_stream_is_the_default():
    from crfrnn_np import random as crandom
    crandom.set_seed(5)
    a = fill(np.zeros(10), filler('type: "gaussian"'))
    crandom.set_seed(5)
    b = fill(np.zeros(10), filler('type: "gaussian"'))
    np.testing.assert_array_equal(a, b)
    assert np.all(a != 0)
