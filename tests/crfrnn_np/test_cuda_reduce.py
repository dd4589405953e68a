"""crfrnn_np/cuda_reduce.py: the block reduction (a ``@gpu_device`` function) under the numba.cuda simulator, in a
subprocess (cudasim_reduce_check.py): sums in float32 and float64 equal the NumPy pairwise tree bit for bit,
int64 sums and minima are exact wherever the minimum sits, every thread reads the result, and each call's types
are recorded and checked against the declared ones. Its PTX (alone and inside every kernel that calls it) is
compiled by test_cuda_kernel.py; its three callers are tested by test_gemm_cuda.py, test_update_rules_cuda.py
and test_loss_cuda.py."""
import pathlib

import pytest

from crfrnn_np.testing import run_under_simulator

HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.cudasim
def test_block_reduce_under_simulator():
    out = run_under_simulator([str(HERE / "cudasim_reduce_check.py")], ok="cudasim reduce OK")
    assert "sum float32: tree of 128 partials" in out and "sum float64: tree of 128 partials" in out
    assert "int64: sum and min" in out
    assert ("calls recorded: ['array(float32, 1d, C)', 'array(float64, 1d, C)', 'array(int32, 1d, C)', "
            "'array(int64, 1d, C)']") in out


def test_block_reduce_is_declared_for_every_caller():
    from crfrnn_np.cuda_kernel import DEVICE_FUNCTIONS, F32, F64, I64
    from crfrnn_np import cuda_reduce
    sigs = DEVICE_FUNCTIONS["crfrnn_np.cuda_reduce.block_reduce"].signatures()
    # gemm_cuda: the bias diff's dtype; update_rules_cuda and loss_cuda: float64 sums, int64 counts and minima
    assert sigs == [(F32[::1], I64), (F64[::1], I64), (I64[::1], I64)]
    assert (cuda_reduce.SUM, cuda_reduce.MIN) == (0, 1)
