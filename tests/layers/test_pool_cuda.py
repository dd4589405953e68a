"""Pooling on the device (layers/pool_cuda.py): MAX with and without the mask top, overlapping and padded
windows with Caffe's ceil rule, AVE with padding and global pooling, forward and backward, equal the CPU layer
under the numba.cuda simulator in float32 and float64 (cudasim_dense_check.py in a subprocess)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_pooling_on_the_device_equals_cpu(cudasim_group):
    out = cudasim_group("pool")
    for title in ("max pool ceil pad mask", "max pool overlap", "ave pool ceil pad", "ave pool global"):
        for dtype in ("float32", "float64"):
            assert "%s %s: cuda == cpu" % (title, dtype) in out
    for kernel in ("max_forward_kernel", "max_backward_kernel", "ave_forward_kernel", "ave_backward_kernel"):
        assert kernel in out


@pytest.mark.cudasim
def test_pool_net_under_simulator():
    """MAX (padded, overlapping windows) then AVE pooling in one net (tests/crfrnn_np/cudasim_net.py): equal to
    the CPU, one input in and one output back per forward."""
    assert_part(run_part('pool'),
                kernels=("max_forward_kernel", "max_backward_kernel", "ave_forward_kernel", "ave_backward_kernel"),
                one_in_one_out=("pool float32", "pool float64"))
