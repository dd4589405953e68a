"""layers/eltwise_cuda.py: Eltwise PROD (three bottoms with the stable gradient, two with the quotient form) and
MAX (three bottoms) forward and backward on the device against the CPU under the numba.cuda simulator, one
input in and one output back per forward (SUM runs on cuda_ops' kernels: test_neuron_cuda.py's net)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_eltwise_cuda_under_simulator():
    assert_part(run_part('eltwise'),
                kernels=("multiply_kernel", "divide_kernel", "eltwise_max_first_kernel", "eltwise_max_next_kernel",
                         "eltwise_max_backward_kernel"),
                one_in_one_out=("eltwise float32", "eltwise float64"))
