"""layers/copy_cuda.py: Crop, Concat, Dropout (TEST) and Eltwise PROD (both gradient forms) and MAX on
the device against the CPU under the numba.cuda simulator."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_copy_cuda_under_simulator():
    assert_part(run_part('copy'),
                kernels=("crop_kernel", "concat_kernel", "multiply_kernel", "divide_kernel",
                         "eltwise_max_first_kernel", "eltwise_max_next_kernel", "eltwise_max_backward_kernel"),
                one_in_one_out=("copy float32", "copy float64", "eltwise float32", "eltwise float64"))
