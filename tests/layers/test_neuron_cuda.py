"""layers/neuron_cuda.py: ReLU (leaky, in place), Sigmoid and TanH forward and backward on the device
against the CPU under the numba.cuda simulator (with Split, Eltwise SUM and UnaryAdd in the same net), one
input in and one output back per forward."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_neuron_cuda_under_simulator():
    assert_part(run_part('neuron'),
                kernels=("relu_forward_kernel", "relu_backward_kernel", "sigmoid_forward_kernel",
                         "sigmoid_backward_kernel", "tanh_forward_kernel", "tanh_backward_kernel"),
                one_in_one_out=("small float32", "small float64"))
