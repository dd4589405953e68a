"""Device-resident blobs (crfrnn_np/blob.py) end to end: the CRF path on the device under the numba.cuda
simulator with its transfers counted, a CPU blob that never touches the device, and the deploy net's layers
all having a device path. (Each device-code module has its own simulator test: tests/layers/test_*_cuda.py,
test_synced_memory.py, test_cuda_ops.py.)"""
import pathlib
import sys

import numpy as np
import pytest

from crfrnn_np.blob import Blob

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cudasim_net import assert_part, run_part  # noqa: E402


@pytest.mark.cudasim
def test_filters_and_crf_layer_and_their_transfers_under_simulator():
    """The two permutohedral filters and the MultiStageMeanfield layer (STEPS engine) on the device: equal to
    the CPU; every forward moves its two inputs in and its output back, nothing more: the bilateral lattice
    of each image is built on the device from features made there (lattice/cuda.py), and the spatial one at
    set-up."""
    assert_part(run_part("filters"),
                kernels=("_bilateral_features_kernel", "_spatial_features_kernel", "_embed_kernel",
                         "_insert_kernel", "_neighbours_kernel", "_order_kernel", "_splat_kernel",
                         "_blur_kernel", "_slice_kernel", "_scale_columns_kernel", "_norm_kernel",
                         "softmax_forward_kernel", "compatibility_kernel", "_axpby_kernel", "_copy_kernel"),
                lines=("filters float32 transfers: first forward {'to_device': 2, 'to_host': 1}, forward "
                       "{'to_device': 2, 'to_host': 1}",
                       "crf float64 transfers: first forward {'to_device': 2, 'to_host': 1}, forward "
                       "{'to_device': 2, 'to_host': 1}"))


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
    assert {"Convolution", "Deconvolution", "Pooling", "Crop", "Dropout", "MultiStageMeanfield"} <= types
