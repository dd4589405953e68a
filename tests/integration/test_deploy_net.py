"""The CRF-RNN deploy nets: the published prototxt (automatic crop offsets) against its explicit-offset twin
and against ours (models/crfrnn_deploy.prototxt, written from the spec), plus the V1-syntax COCO_VOC file.

The fc6 weights alone are 4096·512·7·7 floats (411 MB), so these tests build each net once per module and
run a 1 x 3 x 64 x 48 input (conv1_1's pad 100 makes any size work).
"""
import pathlib

import numpy as np
import pytest

from crfrnn_np import Net, proto

ROOT = pathlib.Path(__file__).resolve().parents[2]
OURS = ROOT / "models" / "crfrnn_deploy.prototxt"
CROP_OFFSETS = [5, 9, 31]                # spec crfasrnn.md §4.2, from the coordinate maps


def crop_offsets(net):
    return [layer.offsets[2:] for layer in net.layers if layer.type == "Crop"]


@pytest.fixture(scope="module")
def deploy_outputs():
    from tests.conftest import need_anchor
    published = need_anchor("crfasrnn", "TVG_CRFRNN_new_deploy.prototxt")
    branch = need_anchor("crfasrnn", "crfrnn_branch", "TVG_CRFRNN_new_deploy.prototxt")
    rng = np.random.default_rng(7)
    x = rng.uniform(-120, 130, (1, 3, 64, 48)).astype(np.float32)
    results = {}
    weights = None
    for key, path in (("published", published), ("branch", branch), ("ours", OURS)):
        net = Net(str(path), phase="TEST")
        if weights is None:               # generic weights: the crops must pick the right windows
            weights = {name: [(0.02 * rng.standard_normal(b.shape)).astype(np.float32) for b in blobs]
                       for name, blobs in net.params.items() if name != "inference1"}
        for name, arrays in weights.items():
            for blob, value in zip(net.params[name], arrays):
                blob.data = value
        out = net.forward(data=x)
        results[key] = dict(pred=out["pred"].copy(), coarse=net.blobs["coarse"].data.copy(),
                            offsets=crop_offsets(net), types=[lp.type for lp in proto.read_net(str(path)).layer],
                            outputs=list(net.outputs), params={k: [b.shape for b in v] for k, v in net.params.items()})
        del net
    return results


def test_output_shape_and_crop_offsets(deploy_outputs):
    for key, res in deploy_outputs.items():
        assert res["outputs"] == ["pred"], key
        assert res["pred"].shape == (1, 21, 64, 48), key
        assert res["offsets"] == [[o, o] for o in CROP_OFFSETS], key
        assert res["params"]["inference1"] == [(1, 1, 21, 21)] * 3, key


def test_layer_counts(deploy_outputs):
    expected = {"Convolution": 18, "ReLU": 15, "Pooling": 5, "Dropout": 2, "Deconvolution": 3, "Crop": 3,
                "Eltwise": 2, "Split": 1, "MultiStageMeanfield": 1}
    for key, res in deploy_outputs.items():
        counts = {t: res["types"].count(t) for t in expected}
        assert counts == expected, key


def test_published_equals_explicit_offsets(deploy_outputs):
    ref = deploy_outputs["branch"]
    assert np.abs(ref["coarse"]).max() > 1e-3     # the FCN part is not trivially zero
    for key in ("published", "ours"):
        np.testing.assert_array_equal(deploy_outputs[key]["coarse"], ref["coarse"])
        np.testing.assert_allclose(deploy_outputs[key]["pred"], ref["pred"], rtol=0, atol=1e-5)


def test_v1_coco_voc_prototxt_loads(anchor):
    net_param = proto.read_net(str(anchor("crfasrnn", "TVG_CRFRNN_COCO_VOC.prototxt")))
    types = [lp.type for lp in net_param.layer]
    assert types.count("MultiStageMeanfield") == 1 and types.count("Convolution") == 18
    crf = [lp for lp in net_param.layer if lp.type == "MultiStageMeanfield"][0]
    assert crf.name == "inference1"
    mp = crf.multi_stage_meanfield_param
    assert (mp.num_iterations, mp.theta_alpha, mp.theta_beta, mp.theta_gamma) == (10, 160.0, 3.0, 3.0)
    # only the CRF tail is instantiated here (fc6 alone is 411 MB): unary/Q0/data as inputs
    tail = proto.parse('layer { name: "in" type: "Input" top: "unary" top: "Q0" top: "data" input_param { '
                       'shape { dim: 1 dim: 21 dim: 8 dim: 8 } shape { dim: 1 dim: 21 dim: 8 dim: 8 } '
                       'shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }')
    tail.layer.append(crf)
    net = Net(tail)
    assert net.params["inference1"][0].shape == (1, 1, 21, 21)
    assert net.forward(unary=np.zeros((1, 21, 8, 8)), Q0=np.zeros((1, 21, 8, 8)),
                       data=np.zeros((1, 3, 8, 8)))["pred"].shape == (1, 21, 8, 8)
