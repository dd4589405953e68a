"""Crop, Concat, Reshape, Flatten and Dropout on the device (layers/copy_cuda.py and the layers' forward_gpu /
backward_gpu) equal their CPU forms under the numba.cuda simulator, float32 and float64 (cudasim_dense_check.py
in a subprocess); the 4-D form of an N-D crop and the reshaped shared memory, on the host."""
import pathlib
import sys

import numpy as np
import pytest

from crfrnn_np.blob import Blob
from crfrnn_np.errors import ShapeError
from crfrnn_np.layers.copy_cuda import as_4d

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_copy_layers_on_the_device_equal_cpu(cudasim_group):
    out = cudasim_group("copy")
    for title in ("crop 4-D", "crop 3-D", "crop 5-D", "crop 5-D channels and depth", "crop 5-D leading axis (host)", "concat", "reshape flatten",
                  "dropout train", "dropout train MT19937 (host mask)", "dropout test"):
        for dtype in ("float32", "float64"):
            assert "%s %s: cuda == cpu" % (title, dtype) in out
    assert "dropout train transfers: {'to_device': 1, 'to_host': 1}" in out
    for kernel in ("copy_block_kernel", "dropout_draw_kernel", "dropout_kernel"):
        assert kernel in out


def test_crop_as_4d():
    # fewer axes: leading singletons
    assert as_4d((6, 5), (1, 2), (3, 2)) == ((1, 1, 6, 5), (0, 0, 1, 2), (1, 1, 3, 2))
    # more axes: leading uncropped axes merged
    assert as_4d((2, 3, 4, 5, 6), (0, 0, 1, 0, 2), (2, 3, 2, 5, 3)) == ((6, 4, 5, 6), (0, 1, 0, 2), (6, 2, 5, 3))
    # a cropped axis merged with the uncropped axis after it: one contiguous run of the merged axis
    assert as_4d((2, 3, 4, 5, 6), (0, 1, 0, 0, 0), (2, 2, 4, 5, 6)) == ((2, 12, 5, 6), (0, 4, 0, 0), (2, 8, 5, 6))
    # every axis after the first cropped: no 4-D form (the layer then runs on the host)
    assert as_4d((2, 3, 4, 5, 6), (0, 1, 1, 1, 1), (2, 2, 2, 4, 5)) is None


def test_crop_as_4d_keeps_the_same_elements(rng):
    """Random 1- to 7-axis crops: the 4-D view of the bottom keeps exactly the N-D crop's elements, in order."""
    forms = 0
    for _ in range(300):
        k = int(rng.integers(1, 8))
        shape = tuple(int(x) for x in rng.integers(1, 4, k))
        top = tuple(int(rng.integers(1, d + 1)) if rng.random() < 0.4 else d for d in shape)
        offsets = tuple(int(rng.integers(0, d - t + 1)) for d, t in zip(shape, top))
        bottom = np.arange(int(np.prod(shape))).reshape(shape)
        want = bottom[tuple(slice(o, o + t) for o, t in zip(offsets, top))]
        form = as_4d(shape, offsets, top)
        if form is None:
            assert k > 4
            continue
        forms += 1
        shape4, offsets4, top4 = form
        got = bottom.reshape(shape4)[tuple(slice(o, o + t) for o, t in zip(offsets4, top4))]
        assert got.shape == top4
        np.testing.assert_array_equal(got.reshape(-1), want.reshape(-1))
    assert forms > 250


def test_share_data_with_another_shape_of_the_same_count():
    base = Blob((2, 6), np.float32, "b")
    view = Blob((3, 4), np.float32, "v")
    view.share_data(base)
    base.data[1, 0] = 5.0
    assert view.cpu_data().shape == (3, 4) and view.cpu_data()[1, 2] == 5.0
    view.data[0, 1] = 7.0                                   # a write through the view is a write to the base
    assert base.cpu_data()[0, 1] == 7.0
    with pytest.raises(ShapeError, match="cannot share the data of blob 'b'"):
        Blob((5,), np.float32, "w").share_data(base)


@pytest.mark.cudasim
def test_copy_net_under_simulator():
    """Crop (axis 2, and axis 1 with offsets), Concat and Dropout (TEST) in one net (tests/crfrnn_np/cudasim_net.py):
    equal to the CPU, one input in and one output back per forward."""
    assert_part(run_part('copy'), kernels=("copy_block_kernel",), one_in_one_out=("copy float32", "copy float64"))
