"""``crfrnn train`` and ``crfrnn test`` with ``--backend cuda`` end to end under the numba.cuda simulator, in a
subprocess with NUMBA_ENABLE_CUDASIM=1 (cudasim_train_cli_check.py): the same snapshot (to float32 rounding)
and accuracy as on the CPU, with the layers and SGD's update running as device kernels."""
import pathlib

import pytest

from crfrnn_np.testing import run_under_simulator

HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.cudasim
def test_train_and_test_commands_on_cuda_under_simulator():
    out = run_under_simulator([str(HERE / "cudasim_train_cli_check.py")], ok="cudasim train/test OK")
    cuda_line = [line for line in out.splitlines() if line.startswith("cuda:")][0]
    launched = cuda_line.split("kernels:")[1].split()
    for kernel in ("_sgd_kernel", "gemm_kernel", "add_bias_kernel", "channel_sum_kernel", "softmax_loss_kernel",
                   "softmax_loss_backward_kernel", "accuracy_status_kernel", "accuracy_count_kernel"):
        assert kernel in launched, (kernel, launched)
