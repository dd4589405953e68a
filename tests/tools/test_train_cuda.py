"""``crfrnn train`` and ``crfrnn test`` with ``--backend cuda`` end to end under the numba.cuda simulator, in a
subprocess with NUMBA_ENABLE_CUDASIM=1 (cudasim_train_cli_check.py): the same snapshot (to float32 rounding)
and accuracy as on the CPU, with the layers and SGD's update running as device kernels."""
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.cudasim
def test_train_and_test_commands_on_cuda_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, str(HERE / "cudasim_train_cli_check.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cudasim train/test OK" in proc.stdout
    cuda_line = [line for line in proc.stdout.splitlines() if line.startswith("cuda:")][0]
    launched = cuda_line.split("kernels:")[1].split()
    for kernel in ("_sgd_kernel", "gemm_kernel", "add_bias_kernel", "channel_sum_kernel", "softmax_loss_kernel",
                   "softmax_loss_backward_kernel", "accuracy_status_kernel", "accuracy_count_kernel"):
        assert kernel in launched, (kernel, launched)
