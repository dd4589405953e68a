"""layers/crf_cuda.py: Softmax and Compatibility (data and weight gradients) on the device against the
CPU under the numba.cuda simulator, in a mean-field step net."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_crf_cuda_under_simulator():
    assert_part(run_part('crf_steps'),
                kernels=("softmax_forward_kernel", "softmax_backward_kernel", "compatibility_kernel",
                         "compatibility_weight_diff_kernel"),
                one_in_one_out=("step float32", "step float64"))
