"""Upgrade pass (caffe.md 1.4) on V1 text and binary nets, legacy inputs, BatchNorm; read_net."""
import numpy as np
import pytest

from crfrnn_np import proto
from crfrnn_np.errors import ParseError, SchemaError


def test_v1_prototxt_anchor(anchor):
    net = proto.read_net(anchor("caffe_cifar10_quick", "v1_legacy", "prediction_example_v1.prototxt"))
    assert not net.has("layers")
    assert [x.type for x in net.layer] == ["ImageData", "Convolution", "Pooling", "ReLU", "Convolution", "ReLU",
                                           "Pooling", "Convolution", "ReLU", "Pooling", "InnerProduct",
                                           "InnerProduct", "Accuracy", "SoftmaxWithLoss", "Softmax", "ArgMax"]
    conv1 = net.layer[1]
    assert [(s.lr_mult, s.has("decay_mult")) for s in conv1.param] == [(1.0, False), (2.0, False)]
    assert conv1.convolution_param.num_output == 32 and conv1.convolution_param.pad == [2]
    assert net.layer[0].transform_param.mean_file == "./examples/cifar10/mean.binaryproto"
    assert net.layer[0].image_data_param.new_height == 32
    assert net.layer[12].include[0].phase == "TEST"
    assert net.layer[15].argmax_param.top_k == 5
    assert net.layer[1].where().endswith("prediction_example_v1.prototxt:17:1")


def test_v1_caffemodel_anchor_upgrades_with_blobs(anchor):
    raw = proto.read_binary(anchor("caffe_cifar10_quick", "v1_legacy", "cifar10_quick_iter_5000.caffemodel"))
    net = proto.upgrade_net(raw)
    assert len(raw.layers) == 13, "the argument is not modified"
    assert [x.name for x in net.layer] == ["cifar", "conv1", "pool1", "relu1", "conv2", "relu2", "pool2", "conv3",
                                           "relu3", "pool3", "ip1", "ip2", "loss"]
    assert [x.type for x in net.layer][:4] == ["Data", "Convolution", "Pooling", "ReLU"]
    assert net.layer[-1].type == "SoftmaxWithLoss"
    ip1 = net.layer[10]
    w, b = ip1.blobs
    assert (w.num, w.channels, w.height, w.width) == (1, 1, 64, 1024)
    assert (b.num, b.channels, b.height, b.width) == (1, 1, 1, 64)
    src = [x for x in raw.layers if x.name == "ip1"][0]
    np.testing.assert_array_equal(w.data, src.blobs[0].data)
    assert sum(len(bl.data) for x in net.layer for bl in x.blobs) == (
        32 * 3 * 25 + 32 + 32 * 32 * 25 + 32 + 64 * 32 * 25 + 64 + 64 * 1024 + 64 + 10 * 64 + 10)
    # the upgraded model survives the wire format
    assert proto.decode(proto.encode(net)) == net


def test_v1_coco_voc_anchor(anchor):
    net = proto.read_net(anchor("crfasrnn", "TVG_CRFRNN_COCO_VOC.prototxt"))
    assert net.layer[0].name == "input" and net.layer[0].type == "Input"
    assert net.layer[0].top == ["data"] and net.layer[0].input_param.shape[0].dim == [1, 3, 500, 500]
    assert not net.has("input") and not net.has("input_dim")
    crf = net.layer[-1]
    assert crf.type == "MultiStageMeanfield" and crf.bottom == ["unary", "Q0", "data"]
    assert [s.lr_mult for s in crf.param] == [10000.0, 10000.0, 1000.0]
    assert crf.multi_stage_meanfield_param.theta_alpha == 160.0
    conv = net.layer[1]
    assert [(s.lr_mult, s.decay_mult) for s in conv.param] == [(1.0, 1.0), (2.0, 0.0)]
    assert "Crop" in [x.type for x in net.layer] and "Split" in [x.type for x in net.layer]


V1_FULL = """
name: "v1"
layers {
  name: "c" type: CONVOLUTION bottom: "x" top: "y"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  param: "w_shared" param: "b_shared" blob_share_mode: PERMISSIVE
  loss_weight: 0.5
  include { phase: TRAIN } exclude { stage: "deploy" }
  convolution_param { num_output: 4 kernel_size: 3 }
  blobs { num: 1 channels: 1 height: 1 width: 2 data: [1, 2] }
}
layers { name: "d" type: DATA top: "x" data_param { source: "db" scale: 0.5 mean_file: "m" crop_size: 7 mirror: true } }
layers { name: "m" type: MULTI_STAGE_MEANFIELD multi_stage_meanfield_param {
  num_iterations: 2 theta_alpha: 1 theta_beta: 2 theta_gamma: 3 } }
layers { name: "n" type: NONE }
"""


def test_v1_field_mapping():
    net = proto.upgrade_net(proto.parse(V1_FULL))
    c, d, m, n = net.layer
    assert c.type == "Convolution"
    assert [(s.name, s.share_mode, s.lr_mult, s.decay_mult) for s in c.param] == [
        ("w_shared", "PERMISSIVE", 1.0, 1.0), ("b_shared", "STRICT", 2.0, 0.0)]
    assert c.param[0].has("share_mode") and not c.param[1].has("share_mode")
    assert c.loss_weight == [0.5] and c.include[0].phase == "TRAIN" and c.exclude[0].stage == ["deploy"]
    assert c.blobs[0].data == [1.0, 2.0] and c.blobs[0].width == 2
    assert d.type == "Data" and d.data_param.source == "db"
    assert not d.data_param.has("scale") and not d.data_param.has("mirror")
    tp = d.transform_param
    assert (tp.scale, tp.mean_file, tp.crop_size, tp.mirror) == (0.5, "m", 7, True)
    assert m.type == "MultiStageMeanfield" and m.multi_stage_meanfield_param.theta_gamma == 3.0
    assert n.type == "" and n.has("type")
    assert c.where("param") and c.where("name").endswith(":4:3")


def test_every_v1_type_maps_to_a_string():
    from crfrnn_np.proto.schema import V1_TYPE_NAMES
    table = {"ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
             "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution", "DECONVOLUTION": "Deconvolution",
             "DATA": "Data", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss",
             "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data",
             "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "INFOGAIN_LOSS": "InfogainLoss",
             "LRN": "LRN", "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
             "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
             "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
             "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
             "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
             "INNER_PRODUCT": "InnerProduct", "MULTI_STAGE_MEANFIELD": "MultiStageMeanfield"}
    for enum_name, type_name in table.items():
        net = proto.upgrade_net(proto.parse("layers { type: %s }" % enum_name))
        assert net.layer[0].type == type_name
        assert V1_TYPE_NAMES[enum_name] == type_name
    values = {"CONVOLUTION": 4, "POOLING": 17, "RELU": 18, "INNER_PRODUCT": 14, "DATA": 5, "SOFTMAX_LOSS": 21,
              "MULTI_STAGE_MEANFIELD": 42, "SIMPLE_FAST_MEANFIELD": 41, "DECONVOLUTION": 39, "ABSVAL": 35}
    for enum_name, number in values.items():
        assert proto.parse("layers { type: %d }" % number).layers[0].type == enum_name


def test_layer_and_layers_together_is_an_error():
    with pytest.raises(SchemaError, match=r"^<string>:2:1: the net has both 'layer' and legacy 'layers'"):
        proto.read_net("layer { name: 'a' }\nlayers { name: 'b' }")


def test_v0_is_rejected():
    with pytest.raises(SchemaError, match=r"^<string>:1:10: V0 layer definitions"):
        proto.read_net("layers { layer { name: 'conv' type: 'conv' num_output: 3 } bottom: 'x' top: 'y' }")


def test_input_dim_becomes_an_input_layer_in_front():
    net = proto.read_net("input: 'data' input: 'im_info' input_dim: [1, 3, 4, 5] input_dim: [2, 1, 1, 3]\n"
                         "layer { name: 'r' type: 'ReLU' bottom: 'data' top: 'data' }")
    first = net.layer[0]
    assert (first.name, first.type, first.top) == ("input", "Input", ["data", "im_info"])
    assert [s.dim for s in first.input_param.shape] == [[1, 3, 4, 5], [2, 1, 1, 3]]
    assert net.layer[1].name == "r" and not net.has("input") and not net.has("input_dim")


def test_input_shape_becomes_an_input_layer():
    net = proto.read_net("input: 'a' input_shape { dim: [2, 7] }")
    assert net.layer[0].input_param.shape[0].dim == [2, 7] and net.layer[0].top == ["a"]


def test_input_names_alone_are_dropped():
    net = proto.upgrade_net(proto.parse("input: 'data' layer { name: 'x' }"))
    assert [x.name for x in net.layer] == ["x"] and not net.has("input")


def test_bad_legacy_inputs():
    with pytest.raises(SchemaError, match=r"^<string>:1:12: 3 input_dim values for 1 input names \(need exactly 4"):
        proto.read_net("input: 'a' input_dim: [1, 2, 3]")
    with pytest.raises(SchemaError, match=r"8 input_dim values for 1 input names"):
        proto.read_net("input: 'a' input_dim: [1, 2, 3, 4, 5, 6, 7, 8]")
    with pytest.raises(SchemaError, match=r"2 input_shape entries for 1 input names"):
        proto.read_net("input: 'a' input_shape { dim: 1 } input_shape { dim: 2 }")


def test_batch_norm_fix():
    text = "layer { type: 'BatchNorm' param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 decay_mult: 3 } }" \
           "layer { type: 'BatchNorm' param { lr_mult: 1 } }"
    net = proto.read_net(text)
    assert [(s.lr_mult, s.decay_mult) for s in net.layer[0].param] == [(0.0, 0.0)] * 3
    assert net.layer[1].param[0].lr_mult == 1.0


def test_idempotent_on_v2(anchor):
    net = proto.read_net(anchor("crfasrnn", "TVG_CRFRNN_new_deploy.prototxt"))
    assert proto.upgrade_net(net) == net
    parsed = proto.read_prototxt(anchor("caffe_lenet", "lenet.prototxt"))
    assert proto.upgrade_net(parsed) == parsed


def test_read_net_sources(anchor, tmp_path):
    path = anchor("caffe_lenet", "lenet.prototxt")
    by_path = proto.read_net(path)
    assert proto.read_net(str(path)) == by_path
    assert proto.read_net(path.read_text()) == by_path
    assert proto.read_net(proto.read_prototxt(path)) == by_path
    model = proto.read_net(anchor("caffe_lenet", "lenet_iter_10000.caffemodel"))
    assert len(model.layer) == 9
    with pytest.raises(ParseError, match="cannot read file"):
        proto.read_net(tmp_path / "missing.prototxt")
    with pytest.raises(ParseError, match="read_net expects"):
        proto.read_net(3)
    with pytest.raises(SchemaError, match="upgrade_net expects a NetParameter"):
        proto.upgrade_net(proto.parse("", "LayerParameter"))
