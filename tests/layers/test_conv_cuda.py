"""layers/conv_cuda.py: Convolution (bias, group, dilation) and a strided Deconvolution forward and
backward (data, weight and bias gradients) on the device against the CPU under the numba.cuda simulator."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_conv_cuda_under_simulator():
    assert_part(run_part('conv'),
                kernels=("conv_forward_kernel", "conv_backward_data_kernel", "conv_backward_weight_kernel",
                         "bias_add_kernel", "bias_backward_kernel"),
                one_in_one_out=("fcn float32", "fcn float64"))
