"""Wire format: the real LeNet/CIFAR files, hand-assembled bytes for each wire rule, round trips."""
import struct
import time

import numpy as np
import pytest

from crfrnn_np import proto
from crfrnn_np.errors import ParseError, SchemaError
from crfrnn_np.proto import Message


def key(number, wire_type):
    """Field key as protobuf defines it, built independently of the code under test."""
    v = (number << 3) | wire_type
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


# -- real files -----------------------------------------------------------------------------------------------
@pytest.fixture
def lenet_bytes(anchor):
    return anchor("caffe_lenet", "lenet_iter_10000.caffemodel").read_bytes()


def test_lenet_first_bytes_match_the_spec(lenet_bytes):
    expected = (b"\x0a\x05LeNet" + b"\xa2\x06\x50" + b"\x0a\x05mnist" + b"\x12\x04Data" + b"\x22\x04data"
                + b"\x22\x05label" + b"\x42\x02\x08\x00" + b"\x50\x00" + b"\xa2\x06\x05\x0d\x00\x00\x80\x3b"
                + b"\xda\x06\x25")
    assert lenet_bytes[:len(expected)] == expected
    # the writer reproduces them from the decoded message
    assert proto.encode(proto.decode(lenet_bytes))[:len(expected)] == expected


def test_lenet_decodes(lenet_bytes):
    t0 = time.perf_counter()
    net = proto.decode(lenet_bytes, filename="lenet_iter_10000.caffemodel")
    assert time.perf_counter() - t0 < 0.5
    assert net.name == "LeNet"
    assert [x.name for x in net.layer] == ["mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2",
                                           "loss"]
    mnist = net.layer[0]
    assert mnist.type == "Data" and mnist.phase == "TRAIN" and mnist.include[0].phase == "TRAIN"
    assert mnist.transform_param.scale == 0.00390625
    conv1 = net.layer[1]
    assert [s.lr_mult for s in conv1.param] == [1.0, 2.0]
    w, b = conv1.blobs
    assert w.shape.dim == [20, 1, 5, 5] and b.shape.dim == [20]
    assert isinstance(w.data, np.ndarray) and w.data.dtype == np.float32 and w.data.shape == (500,)
    np.testing.assert_allclose(w.data[:5], [0.0483467, 0.1820914, 0.0290899, -0.0485537, 0.0770909], atol=1e-7)
    np.testing.assert_allclose(b.data[:3], [-0.01805757, -0.01233158, -0.00230027], atol=1e-8)
    shapes = [(x.name, [list(bl.shape.dim) for bl in x.blobs]) for x in net.layer if x.blobs]
    assert shapes == [("conv1", [[20, 1, 5, 5], [20]]), ("conv2", [[50, 20, 5, 5], [50]]),
                      ("ip1", [[500, 800], [500]]), ("ip2", [[10, 500], [10]])]
    assert sum(len(bl.data) for x in net.layer for bl in x.blobs) == 431080
    assert net.layer[-1].type == "SoftmaxWithLoss" and net.layer[-1].loss_weight == [1.0]


def test_lenet_conv1_bytes(lenet_bytes):
    conv1 = proto.decode(lenet_bytes).layer[1]
    raw = proto.encode(conv1)
    assert b"\x32\x05\x1d\x00\x00\x80\x3f" + b"\x32\x05\x1d\x00\x00\x00\x40" in raw
    weight = proto.encode(Message("LayerParameter", blobs=[conv1.blobs[0]]))
    assert weight[:6] == b"\x3a\xdb\x0f\x2a\xd0\x0f"
    assert weight[-8:] == b"\x3a\x06\x0a\x04\x14\x01\x05\x05"
    assert weight[6:2006] == np.asarray(conv1.blobs[0].data, "<f4").tobytes()


def test_lenet_round_trip_is_byte_identical(lenet_bytes):
    net = proto.decode(lenet_bytes)
    again = proto.encode(net)
    assert again == lenet_bytes
    net2 = proto.decode(again)
    assert net2 == net
    for a, b in zip(net.layer, net2.layer):
        for x, y in zip(a.blobs, b.blobs):
            np.testing.assert_array_equal(x.data, y.data)


def test_solverstate(anchor):
    state = proto.read_binary(anchor("caffe_cifar10_quick", "cifar10_quick_iter_4000.solverstate"), "SolverState")
    assert state.iter == 4000 and state.current_step == 0
    assert state.learned_net == "examples/cifar10/cifar10_quick_iter_4000.caffemodel"
    assert len(state.history) == 10
    model = proto.read_binary(anchor("caffe_cifar10_quick", "cifar10_quick_iter_4000.caffemodel"))
    param_shapes = [list(b.shape.dim) for x in model.layer for b in x.blobs]
    assert [list(h.shape.dim) for h in state.history] == param_shapes
    assert all(len(h.data) == np.prod(h.shape.dim) for h in state.history)
    assert proto.decode(proto.encode(state), "SolverState") == state


def test_v1_caffemodel_decodes(anchor):
    net = proto.read_binary(anchor("caffe_cifar10_quick", "v1_legacy", "cifar10_quick_iter_5000.caffemodel"))
    assert not net.layer and len(net.layers) == 13
    types = {x.name: x.type for x in net.layers}
    assert (types["conv1"], types["pool1"], types["relu1"], types["ip1"], types["loss"]) == (
        "CONVOLUTION", "POOLING", "RELU", "INNER_PRODUCT", "SOFTMAX_LOSS")
    conv1 = [x for x in net.layers if x.name == "conv1"][0]
    bias = conv1.blobs[1]
    assert (bias.num, bias.channels, bias.height, bias.width) == (1, 1, 1, 32) and not bias.has("shape")
    ip1 = [x for x in net.layers if x.name == "ip1"][0]
    assert (ip1.blobs[0].height, ip1.blobs[0].width) == (64, 1024) and len(ip1.blobs[0].data) == 64 * 1024


# -- hand-built bytes -------------------------------------------------------------------------------------------
def test_negative_int32_is_a_ten_byte_varint():
    raw = key(1, 0) + b"\xff" * 9 + b"\x01"
    blob = proto.decode(raw, "BlobProto")
    assert blob.num == -1
    assert proto.encode(Message("BlobProto", num=-1)) == raw
    assert proto.encode(Message("BlobShape", dim=[-2])) == key(1, 2) + b"\x0a" + b"\xfe" + b"\xff" * 8 + b"\x01"


def test_packed_and_unpacked_repeated_scalars():
    packed = key(5, 2) + b"\x08" + struct.pack("<2f", 1.5, -2.0)
    unpacked = key(5, 5) + struct.pack("<f", 1.5) + key(5, 5) + struct.pack("<f", -2.0)
    for raw in (packed, unpacked):
        blob = proto.decode(raw, "BlobProto")
        assert isinstance(blob.data, np.ndarray) and blob.data.tolist() == [1.5, -2.0]
    mixed = proto.decode(packed + unpacked, "BlobProto")
    assert mixed.data.tolist() == [1.5, -2.0, 1.5, -2.0]
    dims_packed = key(1, 2) + b"\x03\x01\x02\x03"
    dims_unpacked = key(1, 0) + b"\x01" + key(1, 0) + b"\x02" + key(1, 0) + b"\x03"
    assert proto.decode(dims_packed, "BlobShape").dim == [1, 2, 3]
    assert proto.decode(dims_unpacked, "BlobShape").dim == [1, 2, 3]
    assert proto.encode(Message("BlobShape", dim=[1, 2, 3])) == dims_packed
    # loss_weight is not [packed = true] in caffe.proto: written one key per value
    assert proto.encode(Message("LayerParameter", loss_weight=[1.0, 0.5])) == (
        key(5, 5) + struct.pack("<f", 1.0) + key(5, 5) + struct.pack("<f", 0.5))
    assert proto.decode(key(5, 2) + b"\x08" + struct.pack("<2f", 1.0, 0.5), "LayerParameter").loss_weight == [
        1.0, 0.5]


def test_double_arrays_and_numpy_encoding():
    values = np.array([0.1, -1e300, 3.0])
    blob = Message("BlobProto", double_data=values, data=np.arange(3, dtype=np.float64))
    raw = proto.encode(blob)
    assert key(5, 2) + b"\x0c" + np.arange(3, dtype="<f4").tobytes() in raw
    assert key(8, 2) + b"\x18" + values.astype("<f8").tobytes() in raw
    back = proto.decode(raw, "BlobProto")
    assert back.double_data.dtype == np.float64 and back.double_data.tolist() == values.tolist()
    assert back == blob


def test_unknown_fields_are_skipped():
    name = key(1, 2) + b"\x01n"
    unknown = (key(99, 0) + b"\x96\x01" + key(98, 1) + b"\x00" * 8 + key(97, 2) + b"\x03abc" + key(96, 5)
               + b"\x00" * 4 + key(95, 3) + key(1, 0) + b"\x05" + key(95, 4))
    net = proto.decode(unknown + name + unknown, "NetParameter")
    assert net.name == "n" and proto.encode(net) == name


def test_known_field_with_other_wire_type_is_skipped():
    raw = key(1, 0) + b"\x05" + key(1, 2) + b"\x01n"
    assert proto.decode(raw).name == "n"


def test_messages_merge_and_last_scalar_wins():
    conv_a = key(1, 0) + b"\x05" + key(4, 0) + b"\x03"
    conv_b = key(1, 0) + b"\x07" + key(6, 0) + b"\x02"
    raw = (key(1, 2) + b"\x01a" + key(106, 2) + bytes([len(conv_a)]) + conv_a + key(1, 2) + b"\x01b"
           + key(106, 2) + bytes([len(conv_b)]) + conv_b)
    layer = proto.decode(raw, "LayerParameter")
    assert layer.name == "b"
    cp = layer.convolution_param
    assert (cp.num_output, cp.kernel_size, cp.stride) == (7, [3], [2])


def test_enum_values_on_the_wire():
    raw = key(121, 2) + b"\x02" + key(1, 0) + b"\x01"
    assert proto.decode(raw, "LayerParameter").pooling_param.pool == "AVE"
    unknown_value = key(121, 2) + b"\x02" + key(1, 0) + b"\x09"
    assert not proto.decode(unknown_value, "LayerParameter").pooling_param.has("pool")


def test_multi_stage_meanfield_field_numbers():
    body = (key(3, 5) + struct.pack("<f", 160) + key(4, 5) + struct.pack("<f", 3) + key(5, 5)
            + struct.pack("<f", 3) + key(6, 0) + b"\x0a")
    for number in (146, 1000):
        layer = proto.decode(key(number, 2) + bytes([len(body)]) + body, "LayerParameter")
        crf = layer.multi_stage_meanfield_param
        assert (crf.theta_alpha, crf.theta_beta, crf.theta_gamma, crf.num_iterations) == (160, 3, 3, 10)
    assert proto.encode(layer) == key(146, 2) + bytes([len(body)]) + body
    v1 = proto.decode(key(44, 2) + bytes([len(body)]) + body + key(5, 0) + b"\x2a", "V1LayerParameter")
    assert v1.type == "MULTI_STAGE_MEANFIELD" and v1.multi_stage_meanfield_param.num_iterations == 10


def test_missing_required_field_on_the_wire():
    body = key(3, 5) + struct.pack("<f", 160) + key(6, 0) + b"\x0a"
    with pytest.raises(ParseError, match=r"missing required field 'theta_beta' \(in "
                                         r"LayerParameter.multi_stage_meanfield_param\)"):
        proto.decode(key(146, 2) + bytes([len(body)]) + body, "LayerParameter")
    with pytest.raises(SchemaError, match="missing required field 'theta_alpha'"):
        proto.encode(Message("MultiStageMeanfieldParameter", num_iterations=2))


def test_truncated_input_names_offset_and_path():
    blob = key(5, 2) + b"\x08" + struct.pack("<2f", 1.0, 2.0)
    layer = key(1, 2) + b"\x01c" + key(7, 2) + bytes([len(blob)]) + blob
    net = key(100, 2) + bytes([len(layer)]) + layer
    with pytest.raises(ParseError, match=r"^m\.caffemodel: byte 0: truncated message .*\(in NetParameter\.layer\)"):
        proto.decode(net[:-1], filename="m.caffemodel")
    with pytest.raises(ParseError, match=r"^<bytes>: byte 2: truncated varint \(in NetParameter\.layer\)"):
        proto.decode(key(100, 2) + b"\x80")
    bad_blob = key(5, 2) + b"\x07" + b"\x00" * 7
    bad_layer = key(7, 2) + bytes([len(bad_blob)]) + bad_blob
    with pytest.raises(ParseError, match=r"not a multiple of 4 \(in NetParameter\.layer\[0\]\.blobs\[0\]\.data\)"):
        proto.decode(key(100, 2) + bytes([len(bad_layer)]) + bad_layer)
    with pytest.raises(ParseError, match=r"malformed varint"):
        proto.decode(key(1, 0) + b"\xff" * 11, "BlobProto")
    with pytest.raises(ParseError, match=r"invalid wire type 7"):
        proto.decode(key(50, 7), "BlobProto")
    with pytest.raises(ParseError, match=r"invalid field number 0"):
        proto.decode(b"\x00\x00", "BlobProto")


def test_decode_rejects_non_bytes():
    with pytest.raises(ParseError, match="expected bytes"):
        proto.decode("text")


def test_round_trip_of_a_text_net(anchor):
    for parts in (("crfasrnn", "TVG_CRFRNN_new_deploy.prototxt"),
                  ("caffe_cifar10_quick", "v1_legacy", "prediction_example_v1.prototxt"),
                  ("caffe_lenet", "lenet_train_test.prototxt")):
        net = proto.read_prototxt(anchor(*parts))
        assert proto.decode(proto.encode(net)) == net


def test_round_trip_of_every_kind():
    text = r"""
    name: "k\001\377é" force_backward: true input_dim: [-1, 0, 2147483647]
    state { phase: TRAIN level: -3 stage: ["a", "b"] }
    layer { name: "l" loss_weight: [0.5, -inf] propagate_down: [true, false]
            blobs { shape { dim: [2, -9223372036854775808] } double_diff: [1e-300, nan] num: -7 }
            convolution_param { pad: [0, 4294967295] engine: CUDNN } phase: TEST }
    """
    net = proto.parse(text)
    back = proto.decode(proto.encode(net))
    assert back == net
    assert back.layer[0].blobs[0].shape.dim == [2, -2 ** 63]
    solver = proto.parse("random_seed: -5 base_lr: 0.01 net_param { name: 'x' } weights: 'a'", "SolverParameter")
    assert proto.decode(proto.encode(solver), "SolverParameter") == solver


def test_encode_rejects_bad_values():
    m = Message("BlobProto")
    m._values["num"] = 2 ** 40
    with pytest.raises(SchemaError, match=r"cannot encode BlobProto\.num \(int32\)"):
        proto.encode(m)
