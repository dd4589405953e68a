"""SoftmaxWithLoss (ignore label; VALID, FULL, BATCH_SIZE and NONE normalization; the probability top; a loss
weight) and Accuracy (top_k, ignore label, per-class top) on the device (layers/loss_cuda.py) equal their CPU
forms under the numba.cuda simulator, float32 and float64 (cudasim_dense_check.py in a subprocess)."""
import pytest


@pytest.mark.cudasim
def test_loss_layers_on_the_device_equal_cpu(cudasim_group):
    out = cudasim_group("loss")
    for title in ("softmax loss VALID ignore", "softmax loss FULL prob", "softmax loss BATCH_SIZE",
                  "softmax loss NONE", "accuracy"):
        for dtype in ("float32", "float64"):
            assert "%s %s: cuda == cpu" % (title, dtype) in out
    assert "softmax_loss_kernel" in out and "accuracy_count_kernel" in out
    assert "bad label: raised" in out
