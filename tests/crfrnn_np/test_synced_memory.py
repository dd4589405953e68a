"""Device-resident blobs (crfrnn_np/synced_memory.py, the device side of crfrnn_np/blob.py) under the numba.cuda
simulator, in subprocesses with NUMBA_ENABLE_CUDASIM=1 (cudasim_net.py): small nets of device layers equal
their CPU twins in float32 and float64, forward and backward; a forward moves its inputs in and its outputs
back, a backward one diff each way; every kernel launch has a declared (PTX-compiled) signature; the
SyncedMemory rule on a single blob. The CPU side of Blob: test_blob.py."""
import pytest


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
def test_device_layers_and_transfers_under_simulator(cudasim_net):
    """FCN (convolutions, pooling, deconvolution), copy and loss layers; the SyncedMemory rule (the element-wise,
    step and Eltwise nets: tests/layers/test_neuron_cuda.py, test_crf_cuda.py, test_eltwise_cuda.py)."""
    out = cudasim_net("layers")
    _check(out, (("fcn", "float32 float64"), ("misc", "float32 float64")),
           ("conv_forward_kernel", "conv_backward_data_kernel", "conv_backward_weight_kernel", "channel_sum_kernel",
            "max_forward_kernel", "max_backward_kernel", "ave_forward_kernel", "ave_backward_kernel",
            "copy_block_kernel", "gemm_kernel", "add_bias_kernel", "softmax_loss_kernel",
            "softmax_loss_backward_kernel", "accuracy_status_kernel", "accuracy_count_kernel"),
           ["loss %s transfers: first forward {'to_device': 2, 'to_host': 2}, forward {'to_device': 2, 'to_host': 2}"
            ", backward {'to_device': 0, 'to_host': 2}" % d for d in ("float32", "float64")])


@pytest.mark.cudasim
def test_device_crf_and_transfers_under_simulator(cudasim_net):
    """The two permutohedral filters and the MultiStageMeanfield layer (STEPS engine) on the device."""
    out = cudasim_net("crf")
    _check(out, (),
           ("_embed_kernel", "_splat_kernel", "_blur_kernel", "_slice_kernel", "_scale_columns_kernel",
            "softmax_forward_kernel", "compatibility_kernel", "_axpby_kernel", "_copy_kernel", "_norm_kernel"),
           ["filters float32 transfers: first forward {'to_device': 13, 'to_host': 7}, forward {'to_device': 1, "
            "'to_host': 1}", "crf float64 transfers: first forward {'to_device': 7, 'to_host': 4}, forward "
            "{'to_device': 1, 'to_host': 1}"])


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
