"""Eltwise PROD (three bottoms with the stable gradient, two with the quotient form) and MAX (three bottoms)
on the device (layers/eltwise_cuda.py) equal the CPU layer in float32 and float64, forward and backward; a
forward moves one input in and one output back (the "eltwise" part of tests/crfrnn_np/cudasim_net.py under
the numba.cuda simulator). SUM runs on cuda_ops' kernels (test_neuron_cuda.py's net)."""
import pytest


@pytest.mark.cudasim
def test_eltwise_prod_and_max_on_the_device_equal_cpu(cudasim_net):
    out = cudasim_net("eltwise")
    for dtype in ("float32", "float64"):
        assert ("eltwise %s transfers: first forward {'to_device': 1, 'to_host': 1}, forward {'to_device': 1, "
                "'to_host': 1}, backward {'to_device': 1, 'to_host': 1}" % dtype) in out
    launched = out.split("launched:")[1].split("\n")[0].split()
    for kernel in ("multiply_kernel", "divide_kernel", "eltwise_max_first_kernel", "eltwise_max_next_kernel",
                   "eltwise_max_backward_kernel"):
        assert kernel in launched, kernel
