"""Caffe's net upgrade pass (``util/upgrade_proto.cpp``, spec ``caffe.md`` 1.4) and :func:`read_net`.

Applied in Caffe's order to text-parsed and wire-decoded NetParameters alike:

1. V0 nets (``layers { layer { ... } }``) are rejected with a clear message.
2. Data-layer transform fields of V1 layers (``scale``, ``mean_file``, ``crop_size``, ``mirror`` inside
   ``data_param``/``image_data_param``/``window_data_param``) move to ``transform_param``.
3. V1 ``layers`` (enum ``type``, ``blobs_lr``, ``weight_decay``, string ``param``, ``blob_share_mode``)
   become V2 ``layer`` entries (string ``type``, ``param { name share_mode lr_mult decay_mult }``).
4. Legacy ``input`` + ``input_shape``/``input_dim`` become an ``Input`` layer named ``"input"`` in front.
5. BatchNorm layers with exactly three ``param`` entries get ``lr_mult = decay_mult = 0`` on all three.
"""
import os

from crfrnn_np.errors import ParseError, SchemaError

from .message import Message
from .schema import V1_LAYER_PARAMS, V1_TYPE_NAMES
from .text_format import parse, read_prototxt
from .wire import read_binary

_V1_COPIED = ("name", "bottom", "top", "include", "exclude", "blobs", "loss_weight")
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
_DATA_PARAMS = {"DATA": "data_param", "IMAGE_DATA": "image_data_param", "WINDOW_DATA": "window_data_param"}


def _where(msg, name=None):
    loc = msg.where(name) or msg.where(None)
    return loc + ": " if loc else ""


def _copy_field(src, dst, name, dst_name=None):
    dst_name = dst_name or name
    value = src._values[name]
    setattr(dst, dst_name, value.copy() if isinstance(value, Message) else value)
    loc = src.where(name)
    if loc:
        dst.set_where(dst_name, loc)


def _upgrade_data_transform(v1):
    """Move V1 data-layer transform fields into ``transform_param`` (in place)."""
    param_name = _DATA_PARAMS.get(v1.type)
    if param_name is None or not v1.has(param_name):
        return
    data_param = v1._values[param_name]
    for name in _TRANSFORM_FIELDS:
        if data_param.has(name):
            _copy_field(data_param, v1.mutable("transform_param"), name)
            data_param.clear(name)


def _upgrade_v1_layer(v1):
    """One V1LayerParameter -> LayerParameter (``UpgradeV1LayerParameter``)."""
    if v1.has("layer"):
        raise SchemaError("%sV0 layer definitions (a 'layer' block nested in 'layers') are not supported; "
                          "upgrade the net with Caffe's upgrade_net_proto_text first" % _where(v1, "layer"))
    layer = Message("LayerParameter")
    layer.set_where(None, v1.where(None))
    for name in _V1_COPIED:
        if v1.has(name):
            _copy_field(v1, layer, name)
    if v1.has("type"):
        layer.type = V1_TYPE_NAMES[v1.type]
        layer.set_where("type", v1.where("type"))
    specs = []

    def spec(i):
        while len(specs) <= i:
            specs.append(Message("ParamSpec"))
        return specs[i]

    for i, name in enumerate(v1.param):
        spec(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        spec(i).share_mode = mode
    for i, lr in enumerate(v1.blobs_lr):
        spec(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        spec(i).decay_mult = decay
    if specs:
        layer.param = specs
        for src in ("param", "blob_share_mode", "blobs_lr", "weight_decay"):
            if v1.where(src):
                layer.set_where("param", v1.where(src))
                break
    for name, _ in V1_LAYER_PARAMS:
        if v1.has(name):
            _copy_field(v1, layer, name)
    return layer


def _upgrade_input(net):
    """Legacy ``input``/``input_shape``/``input_dim`` -> an Input layer in front (``UpgradeNetInput``)."""
    names = list(net.input)
    has_shape, has_dim = net.has("input_shape"), net.has("input_dim")
    if has_shape or has_dim:
        if has_shape and has_dim:
            raise SchemaError("%sgive either input_shape or input_dim for the net inputs, not both"
                              % _where(net, "input_dim"))
        if has_shape and len(net.input_shape) != len(names):
            raise SchemaError("%s%d input_shape entries for %d input names (need one shape per input)"
                              % (_where(net, "input_shape"), len(net.input_shape), len(names)))
        if has_dim and len(net.input_dim) != 4 * len(names):
            raise SchemaError("%s%d input_dim values for %d input names (need exactly 4 per input: N, C, H, W)"
                              % (_where(net, "input_dim"), len(net.input_dim), len(names)))
        layer = Message("LayerParameter", name="input", type="Input", top=names)
        layer.set_where(None, net.where("input") or net.where("input_shape") or net.where("input_dim"))
        input_param = layer.mutable("input_param")
        for i in range(len(names)):
            if has_shape:
                input_param.shape.append(net.input_shape[i].copy())
            else:
                input_param.shape.append(Message("BlobShape", dim=net.input_dim[4 * i:4 * i + 4]))
        net.layer = [layer] + list(net.layer)
    for name in ("input", "input_shape", "input_dim"):
        net.clear(name)


def _upgrade_batch_norm(net):
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0


def upgrade_net(net_param):
    """Upgrade a NetParameter to the current format (a new message; the argument is not modified).

    Parameters
    ----------
    net_param : Message
        A ``NetParameter`` from :func:`~crfrnn_np.proto.parse` or :func:`~crfrnn_np.proto.decode`.

    Returns
    -------
    Message
        The upgraded copy: only ``layer`` (no ``layers``, ``input``, ``input_dim``, ``input_shape``).
        Idempotent on current nets. Field positions (``where``) carry over.

    Raises
    ------
    SchemaError
        Both ``layer`` and ``layers`` given, a V0 net, or legacy input fields that do not match the names.
    """
    if not isinstance(net_param, Message) or net_param.type_name != "NetParameter":
        raise SchemaError("upgrade_net expects a NetParameter message, got %r" % (net_param,))
    net = net_param.copy()
    if net.has("layers"):
        if net.has("layer"):
            raise SchemaError("%sthe net has both 'layer' and legacy 'layers' fields; use one of them"
                              % _where(net, "layers"))
        v1_layers = net.layers
        for v1 in v1_layers:
            _upgrade_data_transform(v1)
        net.layer = [_upgrade_v1_layer(v1) for v1 in v1_layers]
        net.set_where("layer", net.where("layers"))
        net.clear("layers")
    _upgrade_input(net)
    _upgrade_batch_norm(net)
    return net


_BINARY_SUFFIXES = (".caffemodel", ".binaryproto", ".pb")


def read_net(source):
    """Read a net definition and upgrade it (see :func:`upgrade_net`).

    Parameters
    ----------
    source : str, os.PathLike or Message
        A prototxt file (``.caffemodel``/``.binaryproto`` files are decoded from the wire format),
        prototxt text (recognised by containing a newline, ``{`` or ``:`` and not being an existing path),
        or a NetParameter Message.

    Returns
    -------
    Message
        The upgraded NetParameter.
    """
    if isinstance(source, Message):
        return upgrade_net(source)
    if isinstance(source, (bytes, bytearray)):
        return upgrade_net(parse(source))
    if not isinstance(source, (str, os.PathLike)):
        raise ParseError("read_net expects a path, prototxt text or a NetParameter, got %s"
                         % type(source).__name__)
    path = os.fspath(source)
    if isinstance(source, str) and not os.path.exists(path) and any(c in path for c in "\n{:"):
        return upgrade_net(parse(source))
    if str(path).lower().endswith(_BINARY_SUFFIXES):
        return upgrade_net(read_binary(path))
    return upgrade_net(read_prototxt(path))
