"""Device-resident blobs (crfrnn_np/blob.py, crfrnn_np/synced_memory.py) under the numba.cuda simulator, in
subprocesses with NUMBA_ENABLE_CUDASIM=1: small nets of device layers equal their CPU twins in float32 and
float64, forward and backward; a forward moves its inputs in and its outputs back, a backward one diff each
way; every kernel launch has a declared (PTX-compiled) signature; the SyncedMemory rule on a single blob. The
CPU side of Blob is tested by every layer's tests."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from crfrnn_np.blob import Blob

HERE = pathlib.Path(__file__).resolve().parent


def _run(part):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, str(HERE / "cudasim_net.py"), part], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cudasim net OK" in proc.stdout
    return proc.stdout


def _check(out, nets, kernels, lines=()):
    for net, dtypes in nets:
        for dtype in dtypes.split():
            assert "%s %s transfers: first forward {'to_device': 1, 'to_host': 1}, forward {'to_device': 1, " \
                   "'to_host': 1}" % (net, dtype) in out
    for line in lines:
        assert line in out
    launched = out.split("launched:")[1].split()
    for kernel in kernels:
        assert kernel in launched, kernel


@pytest.mark.cudasim
def test_device_layers_and_transfers_under_simulator():
    """Element-wise, mean-field step, FCN (convolutions, pooling, deconvolution), copy/product and loss layers;
    the SyncedMemory rule."""
    out = _run("layers")
    _check(out, (("small", "float32 float64"), ("step", "float32 float64"), ("fcn", "float32 float64"),
                 ("misc", "float32 float64"), ("eltwise", "float32 float64")),
           ("relu_forward_kernel", "relu_backward_kernel", "sigmoid_forward_kernel", "tanh_backward_kernel",
            "softmax_forward_kernel", "softmax_backward_kernel", "compatibility_kernel",
            "compatibility_weight_diff_kernel", "_axpby_kernel", "_scale_kernel", "conv_forward_kernel",
            "conv_backward_data_kernel", "conv_backward_weight_kernel", "bias_add_kernel", "bias_backward_kernel",
            "max_forward_kernel", "max_backward_kernel", "ave_forward_kernel", "ave_backward_kernel",
            "crop_kernel", "concat_kernel", "ip_forward_kernel", "ip_backward_data_kernel",
            "ip_backward_weight_kernel", "log_prob_kernel", "sum_kernel", "softmax_loss_backward_kernel",
            "accuracy_kernel", "multiply_kernel", "divide_kernel", "eltwise_max_first_kernel",
            "eltwise_max_next_kernel",
            "eltwise_max_backward_kernel"),
           ["loss %s transfers: first forward {'to_device': 2, 'to_host': 2}, forward {'to_device': 2, 'to_host': 2}"
            ", backward {'to_device': 0, 'to_host': 2}" % d for d in ("float32", "float64")])


@pytest.mark.cudasim
def test_device_crf_and_transfers_under_simulator():
    """The two permutohedral filters and the MultiStageMeanfield layer (STEPS engine) on the device."""
    out = _run("crf")
    _check(out, (),
           ("_embed_kernel", "_splat_kernel", "_blur_kernel", "_slice_kernel", "_scale_columns_kernel",
            "softmax_forward_kernel", "compatibility_kernel", "_axpby_kernel", "_copy_kernel", "_norm_kernel"),
           ["filters float32 transfers: first forward {'to_device': 13, 'to_host': 7}, forward {'to_device': 1, "
            "'to_host': 1}", "crf float64 transfers: first forward {'to_device': 7, 'to_host': 4}, forward "
            "{'to_device': 1, 'to_host': 1}"])


def test_host_blob_never_touches_the_device():
    blob = Blob((2, 3), np.float64, "h")
    assert not blob.has_data()
    blob.data[1, 2] = 4.0
    assert blob.has_data() and blob._data.device is None
    assert blob.cpu_data()[1, 2] == 4.0 and blob.cpu_data() is blob.data
    other = Blob((2, 3), np.float64, "o")
    other.share_data(blob)
    blob.data[0, 0] = 1.0
    assert other.data[0, 0] == 1.0
    blob.release()
    assert not blob.has_data()


def test_every_layer_of_the_deploy_net_has_a_device_path():
    """Device-resident blobs only pay off when no layer falls back to the host: every layer of the shipped
    deploy net has forward_gpu/backward_gpu for the parameters it uses (MultiStageMeanfield runs its STEPS
    sub-net, whose step layers have them; Input has nothing to do)."""
    import crfrnn_np.layers  # noqa: F401  (registers every layer type)
    from crfrnn_np import models, proto
    from crfrnn_np.layer import layer_class
    from crfrnn_np.layers.multi_stage_meanfield import resolve_engine
    param = proto.read_net(models.resolve("crfrnn_deploy"))
    types = set()
    for lp in param.layer:
        types.add(lp.type)
        cls = layer_class(lp.type)
        if lp.type == "MultiStageMeanfield":
            assert resolve_engine(lp, "cuda") == "STEPS"
            for step in ("Softmax", "PermutohedralFilter", "Compatibility", "Eltwise", "UnaryAdd", "Split"):
                assert hasattr(layer_class(step), "forward_gpu") and hasattr(layer_class(step), "backward_gpu")
        elif lp.type != "Input":
            assert hasattr(cls, "forward_gpu") and hasattr(cls, "backward_gpu"), lp.type
        if lp.type == "Pooling":
            assert len(lp.top) == 1                                # a mask top runs on the host
    assert {"Convolution", "Deconvolution", "Pooling", "Crop", "Dropout", "MultiStageMeanfield"} <= types
