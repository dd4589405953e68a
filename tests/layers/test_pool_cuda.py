"""layers/pool_cuda.py: MAX (padded, overlapping windows) and AVE pooling forward and backward on the
device against the CPU under the numba.cuda simulator."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_pool_cuda_under_simulator():
    assert_part(run_part('pool'),
                kernels=("max_forward_kernel", "max_backward_kernel", "ave_forward_kernel",
                         "ave_backward_kernel"),
                one_in_one_out=("pool float32", "pool float64"))
