"""InnerProduct on the device (layers/gemm_cuda.py: a tiled shared-memory GEMM reading either operand
transposed in place, the bias added per row, the bias gradient as a block reduction): forward, data, weight and
bias gradients equal the CPU layer under the numba.cuda simulator, float32 and float64, with an inner dimension
larger than one tile and the ``transpose``/``axis``/no-bias variants (cudasim_dense_check.py in a subprocess)."""
import pytest


@pytest.mark.cudasim
def test_inner_product_on_the_device_equals_cpu(cudasim_group):
    out = cudasim_group("gemm")
    for title in ("inner product", "inner product transpose axis 2"):
        for dtype in ("float32", "float64"):
            assert "%s %s: cuda == cpu" % (title, dtype) in out
    for kernel in ("gemm_kernel", "add_bias_kernel", "channel_sum_kernel"):
        assert kernel in out
