"""Convolution and Deconvolution on the device as implicit GEMMs (layers/conv_cuda.py: no im2col buffer):
forward, data, weight and bias gradients equal the CPU layers under the numba.cuda simulator, float32 and
float64, with padding, stride, dilation, groups, non-square kernels, a 1x1 kernel and two bottoms; a 3-D
convolution (run on the host inside a cuda net) too (cudasim_dense_check.py in a subprocess)."""
import pathlib
import sys

import pytest

from crfrnn_np.layers.conv_cuda import _geo, supported
from crfrnn_np.layers.conv import ConvGeometry

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_convolutions_on_the_device_equal_cpu(cudasim_group):
    out = cudasim_group("conv")
    for title in ("conv pad stride bias", "conv group dilation", "conv 1x1 two bottoms", "conv 3-D (host)",
                  "deconv stride pad bias", "deconv group"):
        for dtype in ("float32", "float64"):
            assert "%s %s: cuda == cpu" % (title, dtype) in out
    for kernel in ("conv_forward_kernel", "conv_backward_data_kernel", "conv_backward_weight_kernel"):
        assert kernel in out


def test_kernel_geometry_is_the_host_geometry_lifted_to_2d():
    geo = ConvGeometry(4, (7,), 6, (3,), (1,), (2,), (1,), 2, "float32")        # a 1-D convolution
    assert supported(geo)
    # (C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G); OW = (7 + 2 - 3) // 2 + 1 = 4
    assert _geo(geo) == (4, 1, 7, 6, 1, 4, 1, 3, 1, 2, 0, 1, 1, 1, 2)
    assert not supported(ConvGeometry(2, (3, 3, 3), 2, (1, 1, 1), (0, 0, 0), (1, 1, 1), (1, 1, 1), 1, "float32"))


@pytest.mark.cudasim
def test_conv_net_under_simulator():
    """A net of two Convolutions (bias, group, dilation), ReLU, MAX and AVE Pooling and a strided Deconvolution
    (tests/crfrnn_np/cudasim_net.py): equal to the CPU, one input in and one output back per forward."""
    assert_part(run_part('conv'),
                kernels=("conv_forward_kernel", "conv_backward_data_kernel", "conv_backward_weight_kernel",
                         "channel_sum_kernel"),
                one_in_one_out=("fcn float32", "fcn float64"))
