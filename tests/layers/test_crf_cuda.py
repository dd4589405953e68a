"""The mean-field step layers without the filters on the device (layers/crf_cuda.py: Softmax and
Compatibility, with UnaryAdd): Q = Softmax(x), L = x - W Q equals the CPU net in float32 and float64, the
Compatibility weight's gradient included; a forward moves one input in and one output back (the "step"
part of tests/crfrnn_np/cudasim_net.py under the numba.cuda simulator). The whole CRF layer on the device:
tests/crfrnn_np/test_synced_memory.py."""
import pytest


@pytest.mark.cudasim
def test_step_layers_on_the_device_equal_cpu(cudasim_net):
    out = cudasim_net("step")
    for dtype in ("float32", "float64"):
        assert ("step %s transfers: first forward {'to_device': 1, 'to_host': 1}, forward {'to_device': 1, "
                "'to_host': 1}, backward {'to_device': 1, 'to_host': 1}" % dtype) in out
    launched = out.split("launched:")[1].split("\n")[0].split()
    for kernel in ("softmax_forward_kernel", "softmax_backward_kernel", "compatibility_kernel",
                   "compatibility_weight_diff_kernel"):
        assert kernel in launched, kernel
