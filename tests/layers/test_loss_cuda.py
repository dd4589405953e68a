"""SoftmaxWithLoss (ignore label; VALID, FULL, BATCH_SIZE and NONE normalization; the probability top; a loss
weight) and Accuracy (top_k, ignore label, per-class top) on the device (layers/loss_cuda.py) equal their CPU
forms under the numba.cuda simulator, float32 and float64 (cudasim_dense_check.py in a subprocess)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_loss_layers_on_the_device_equal_cpu(cudasim_group):
    out = cudasim_group("loss")
    for title in ("softmax loss VALID ignore", "softmax loss FULL prob", "softmax loss BATCH_SIZE",
                  "softmax loss NONE", "accuracy"):
        for dtype in ("float32", "float64"):
            assert "%s %s: cuda == cpu" % (title, dtype) in out
    assert "softmax_loss_kernel" in out and "accuracy_count_kernel" in out
    assert "bad label: raised" in out


@pytest.mark.cudasim
def test_loss_net_under_simulator():
    """SoftmaxWithLoss (ignored label) and Accuracy (top 2) in one net (tests/crfrnn_np/cudasim_net.py): equal to
    the CPU; scores and labels in, loss and accuracy back; the backward brings each input's diff back."""
    assert_part(run_part('loss'),
                kernels=("softmax_loss_kernel", "softmax_loss_backward_kernel", "accuracy_status_kernel",
                         "accuracy_count_kernel"),
                lines=["loss %s transfers: first forward {'to_device': 2, 'to_host': 2}, forward "
                       "{'to_device': 2, 'to_host': 2}, backward {'to_device': 0, 'to_host': 2}" % dtype
                       for dtype in ("float32", "float64")])
