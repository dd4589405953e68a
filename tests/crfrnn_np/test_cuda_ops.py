"""crfrnn_np/cuda_ops.py: fill, copy, scale and axpby (in place too) against NumPy under the numba.cuda
simulator, float32 and float64."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cudasim_net import run_part  # noqa: E402


@pytest.mark.cudasim
def test_cuda_ops_under_simulator():
    out = run_part("ops")
    assert "cuda_ops OK" in out
    for kernel in ("_fill_kernel", "_copy_kernel", "_scale_kernel", "_axpby_kernel"):
        assert kernel in out.split("launched:")[1].split()
