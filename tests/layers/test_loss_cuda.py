"""layers/loss_cuda.py: SoftmaxWithLoss (ignored label) and Accuracy (top 2) on the device against the
CPU under the numba.cuda simulator; scores and labels in, loss and accuracy back."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_loss_cuda_under_simulator():
    assert_part(run_part('loss'),
                kernels=("log_prob_kernel", "sum_kernel", "softmax_loss_backward_kernel", "accuracy_kernel"),
                lines=["loss float32 transfers: first forward {'to_device': 2, 'to_host': 2}, forward "
                       "{'to_device': 2, 'to_host': 2}, backward {'to_device': 0, 'to_host': 2}"],
                one_in_one_out=())
