"""layers/inner_product_cuda.py: InnerProduct (plain and transposed weights, bias) with Flatten and
Reshape on the device against the CPU under the numba.cuda simulator."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_inner_product_cuda_under_simulator():
    assert_part(run_part('ip'),
                kernels=("ip_forward_kernel", "ip_backward_data_kernel", "ip_backward_weight_kernel"),
                one_in_one_out=("ip float32", "ip float64"))
