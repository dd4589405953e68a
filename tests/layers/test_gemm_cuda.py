"""InnerProduct on the device (layers/gemm_cuda.py: a tiled shared-memory GEMM reading either operand
transposed in place, the bias added per row, the bias gradient as a block reduction): forward, data, weight and
bias gradients equal the CPU layer under the numba.cuda simulator, float32 and float64, with an inner dimension
larger than one tile and the ``transpose``/``axis``/no-bias variants (cudasim_dense_check.py in a subprocess)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_inner_product_on_the_device_equals_cpu(cudasim_group):
    out = cudasim_group("gemm")
    for title in ("inner product", "inner product transpose axis 2"):
        for dtype in ("float32", "float64"):
            assert "%s %s: cuda == cpu" % (title, dtype) in out
    for kernel in ("gemm_kernel", "add_bias_kernel", "channel_sum_kernel"):
        assert kernel in out


@pytest.mark.cudasim
def test_inner_product_net_under_simulator():
    """Flatten, InnerProduct (plain with bias, transposed without) and Reshape in one net
    (tests/crfrnn_np/cudasim_net.py): equal to the CPU, one input in and one output back per forward."""
    assert_part(run_part('ip'), kernels=("gemm_kernel", "add_bias_kernel", "channel_sum_kernel"),
                one_in_one_out=("ip float32", "ip float64"))
