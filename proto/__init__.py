"""Protobuf text and wire formats for Caffe's files, without a protobuf dependency.

Public functions
----------------
parse(text, type_name="NetParameter", filename=None) -> Message
read_prototxt(path, type_name="NetParameter") -> Message
decode(data: bytes, type_name="NetParameter", filename=None) -> Message      (wire format)
encode(msg: Message) -> bytes
to_text(msg: Message) -> str
upgrade_net(net_param: Message) -> Message   (V1 ``layers``, ``input``/``input_dim``/``input_shape``)
"""
from .message import Message, SCHEMA, ENUMS  # noqa: F401
