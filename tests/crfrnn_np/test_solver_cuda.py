"""SGD on the cuda backend (crfrnn_np/solver_cuda.py) under the numba.cuda simulator, in a subprocess with
NUMBA_ENABLE_CUDASIM=1: parameters and history equal the CPU's after three iterations, and an iteration moves
only the losses across."""
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.cudasim
def test_sgd_on_the_device_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, str(HERE / "cudasim_solver_check.py")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "one training iteration (iter_size 2) moves {'to_device': 0, 'to_host': 2}" in proc.stdout
    assert "cudasim solver OK" in proc.stdout


@pytest.mark.cudasim
def test_train_and_test_commands_on_cuda_under_simulator():
    """``crfrnn train`` / ``crfrnn test --backend cuda`` end to end: same snapshot (to float32 rounding) and
    accuracy as on the CPU, with the layers and SGD running as device kernels."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, str(HERE / "cudasim_train_cli_check.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cudasim train/test OK" in proc.stdout
    cuda_line = [line for line in proc.stdout.splitlines() if line.startswith("cuda:")][0]
    for kernel in ("sgd_kernel", "ip_forward_kernel", "ip_backward_weight_kernel", "softmax_loss_backward_kernel",
                   "accuracy_kernel"):
        assert kernel in cuda_line
