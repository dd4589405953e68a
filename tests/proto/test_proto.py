"""The crfrnn_np.proto package: its public functions work together (text -> message -> wire -> message ->
text)."""
from crfrnn_np import proto

TEXT = 'name: "n"\nlayer { name: "r" type: "ReLU" bottom: "x" top: "x" relu_param { negative_slope: 0.25 } }\n'


def test_public_functions():
    assert set(proto.__all__) == {"Message", "SCHEMA", "ENUMS", "parse", "read_prototxt", "to_text", "decode",
                                  "encode", "read_binary", "upgrade_net", "read_net"}
    for name in proto.__all__:
        assert hasattr(proto, name), name


def test_text_wire_text(tmp_path):
    net = proto.parse(TEXT)
    back = proto.decode(proto.encode(net))
    assert back == net and proto.to_text(back) == proto.to_text(net)
    (tmp_path / "n.prototxt").write_text(TEXT)
    (tmp_path / "n.bin").write_bytes(proto.encode(net))
    assert proto.read_prototxt(str(tmp_path / "n.prototxt")) == net
    assert proto.read_binary(str(tmp_path / "n.bin")) == net
    assert proto.read_net(str(tmp_path / "n.prototxt")).layer[0].relu_param.negative_slope == 0.25
    assert proto.upgrade_net(net.copy()) == net                       # already in the current format
