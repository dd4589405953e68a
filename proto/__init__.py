"""Protobuf text and wire formats for Caffe's files, without a protobuf dependency.

Public functions
----------------
parse(text, type_name="NetParameter", filename=None) -> Message
read_prototxt(path, type_name="NetParameter") -> Message
decode(data: bytes, type_name="NetParameter", filename=None) -> Message      (wire format)
encode(msg: Message) -> bytes
to_text(msg: Message) -> str
upgrade_net(net_param: Message) -> Message   (V1 ``layers``, ``input``/``input_dim``/``input_shape``)
read_net(path_or_text_or_message) -> Message (text prototxt parsed and upgraded)
read_binary(path, type_name="NetParameter") -> Message (wire-format file)
"""
from .message import ENUMS, SCHEMA, Message  # noqa: F401
from . import schema  # noqa: F401  (fills SCHEMA and ENUMS)
from .text_format import parse, read_prototxt, to_text  # noqa: F401
from .wire import decode, encode, read_binary  # noqa: F401
from .upgrade import read_net, upgrade_net  # noqa: F401

__all__ = ["Message", "SCHEMA", "ENUMS", "parse", "read_prototxt", "to_text", "decode", "encode",
           "read_binary", "upgrade_net", "read_net"]
