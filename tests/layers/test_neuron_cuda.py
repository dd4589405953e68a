"""ReLU (with a negative slope), Sigmoid and TanH on the device (layers/neuron_cuda.py), in a small net with an
Eltwise SUM and a UnaryAdd, equal the same net on the CPU in float32 and float64, forward and backward; a
forward moves one input in and one output back, a backward one diff each way (the "small" part of
tests/crfrnn_np/cudasim_net.py under the numba.cuda simulator)."""
import pytest


@pytest.mark.cudasim
def test_neuron_layers_on_the_device_equal_cpu(cudasim_net):
    out = cudasim_net("small")
    for dtype in ("float32", "float64"):
        assert ("small %s transfers: first forward {'to_device': 1, 'to_host': 1}, forward {'to_device': 1, "
                "'to_host': 1}, backward {'to_device': 1, 'to_host': 1}" % dtype) in out
    launched = out.split("launched:")[1].split("\n")[0].split()
    for kernel in ("relu_forward_kernel", "relu_backward_kernel", "sigmoid_forward_kernel", "sigmoid_backward_kernel",
                   "tanh_forward_kernel", "tanh_backward_kernel"):
        assert kernel in launched, kernel
