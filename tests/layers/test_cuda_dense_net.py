"""A small net of the dense layers (Convolution, ReLU, Pooling, Deconvolution, Crop, Concat, a 1x1 Convolution,
SoftmaxWithLoss with an ignore label, InnerProduct, and the automatic Splits) runs wholly on the device under the
numba.cuda simulator: the loss, the InnerProduct output, the input gradient and every parameter gradient equal
the CPU net's to 1e-4 relative in float32 and float64; one forward moves the two inputs in and the two outputs
back, one backward the output diff in and the input diff back; every launch has a declared signature
(cudasim_dense_check.py in a subprocess)."""
import pytest


@pytest.mark.cudasim
def test_dense_net_on_the_device_equals_cpu_with_one_transfer_per_input_and_output(cudasim_group):
    out = cudasim_group("net")
    for dtype in ("float32", "float64"):
        assert "net %s: cuda == cpu" % dtype in out
        assert ("net %s transfers: forward {'to_device': 2, 'to_host': 2}, backward {'to_device': 1, 'to_host': 1}"
                % dtype) in out
    for kernel in ("conv_forward_kernel", "conv_backward_data_kernel", "conv_backward_weight_kernel", "gemm_kernel",
                   "max_forward_kernel", "copy_block_kernel", "softmax_loss_kernel"):
        assert kernel in out
