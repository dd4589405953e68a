"""Blob: lazy zeroed arrays, reshape that reallocates only on a change, the data/diff setters' shape and
dtype rules, Caffe's shape string and axis helpers, and the size limit checked before allocating."""
import numpy as np
import pytest

from crfrnn_np import Blob, ShapeError
from crfrnn_np.blob import MAX_BLOB_COUNT, check_shape, shape_string


def test_lazy_zeroed_arrays_of_the_blob_dtype():
    b = Blob((2, 3), np.float64, "x")
    assert not b.has_diff()
    assert b.data.dtype == np.float64 and b.data.shape == (2, 3) and not b.data.any()
    assert not b.has_diff()                       # reading data does not allocate the diff
    assert not b.diff.any() and b.has_diff()


def test_reshape_reallocates_only_on_a_change():
    b = Blob((2, 3))
    b.data[...] = 5
    b.reshape([2, 3])
    assert np.all(b.data == 5)
    b.reshape((3, 2))
    assert b.shape == (3, 2) and not b.data.any()


def test_setters_reshape_equal_counts_cast_and_reject_other_counts():
    b = Blob((2, 3), np.float32, "x")
    b.data = np.arange(6)                          # same count: reshaped, cast to float32
    assert b.data.shape == (2, 3) and b.data.dtype == np.float32 and b.data[1, 2] == 5
    b.diff = np.ones((3, 2), np.float64)
    assert b.diff.shape == (2, 3) and b.diff.dtype == np.float32
    with pytest.raises(ShapeError, match="blob 'x'.*shape 7 .*2 3"):
        b.data = np.zeros(7)


def test_shape_string_count_and_axes():
    b = Blob((1, 3, 5, 7))
    assert shape_string((1, 3, 500, 500)) == "1 3 500 500 (750000)"
    assert shape_string(()) == " (1)"
    assert b.count == 105 and b.num_axes == 4 and b.count_range(1, 3) == 15 and b.count_range(2) == 35
    assert b.canonical_axis(-1) == 3 and b.canonical_axis(1) == 1
    with pytest.raises(ShapeError, match="axis 4 out of range"):
        b.canonical_axis(4)
    assert Blob(()).count == 1 and Blob(()).canonical_axis(0) == 0


def test_check_shape_rejects_negative_absurd_and_non_integer():
    assert check_shape([2, np.int64(3)]) == (2, 3)
    with pytest.raises(ShapeError, match="negative"):
        check_shape((2, -1))
    with pytest.raises(ShapeError, match="more than the limit of %d" % MAX_BLOB_COUNT):
        check_shape((1 << 16, 1 << 16))
    with pytest.raises(ShapeError, match="not a sequence of integers"):
        check_shape(("a",))
    with pytest.raises(ShapeError):
        Blob((1 << 20, 1 << 20))


def test_share_and_release():
    a, b = Blob((2,)), Blob((2,))
    b.share_data(a)
    a.data[0] = 3
    assert b.data[0] == 3
    b.share_diff(a)
    a.diff[1] = 4
    assert b.diff[1] == 4
    a.release()
    assert not a.has_diff() and not a.data.any()
    assert b.data[0] == 3                         # the other blob keeps the array
