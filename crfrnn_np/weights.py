"""Weights I/O: binary ``.caffemodel`` (a serialized NetParameter) and Caffe's HDF5 layout.

Loading follows Caffe's ``CopyTrainedLayersFrom``: source layers are matched to the net's layers by *name*
(source layers with no match are ignored, net layers absent from the source keep their initial values); the
number of blobs must be equal and each blob's shape must match, where a legacy 4-D BlobProto
(num/channels/height/width) matches a target whose shape, left-padded with 1s to 4 axes, is equal. One
addition: a MultiStageMeanfield layer's parameters load between its fused and its unrolled form (see
:func:`crfrnn_np.layers.multi_stage_meanfield.weight_aliases`).
HDF5 files (``/data/<layer>/<i>``) are recognised by their signature, not their name; there a layer may give
fewer datasets than it has blobs (shared parameters are written by their owner only) and shapes must match
exactly. Writes go to a temporary file that is renamed over the target.
"""
import os

import numpy as np

from . import proto
from .atomic import atomic_path, write_bytes
from .errors import WeightsError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path):
    with open(path, "rb") as f:
        return f.read(8) == HDF5_SIGNATURE


def blob_proto_shape(bp):
    """``(shape, legacy)`` of a BlobProto: legacy 4-D dims when any of num/channels/height/width is set."""
    if any(bp.has(f) for f in ("num", "channels", "height", "width")):
        return (bp.num, bp.channels, bp.height, bp.width), True
    return tuple(int(d) for d in bp.shape.dim), False


def blob_proto_array(bp):
    """The data of a BlobProto as a float64 or float32 1-D array (double_data preferred)."""
    if len(bp.double_data):
        return np.asarray(bp.double_data, dtype=np.float64)
    return np.asarray(bp.data, dtype=np.float32)


def _shape_matches(shape, legacy, target):
    if legacy:
        padded = (1,) * (4 - len(target)) + tuple(target) if len(target) <= 4 else None
        return padded == tuple(shape)
    return tuple(shape) == tuple(target)


def _fmt(shape):
    return " ".join(str(d) for d in shape) + " (%d)" % int(np.prod(shape, dtype=np.int64))


def _target_layers(net):
    """name -> ``(description, blobs)``: the net's layers (with duplicate names the last one wins, Caffe's
    ``layer_names_index_``), plus the names under which a fused or unrolled mean-field layer's parameters
    may appear in a file saved from the other form (:func:`multi_stage_meanfield.weight_aliases`)."""
    from crfrnn_np.layers.multi_stage_meanfield import weight_aliases
    targets = weight_aliases(net.layers)
    targets.update({layer.name: ("%s" % layer.type, layer.blobs) for layer in net.layers})
    return targets


def _blob_key(blob):
    """The array owner of a parameter blob (a PERMISSIVE shared view counts as its owner)."""
    return id(getattr(blob, "_owner", blob))


def _report(net, copied_blobs, ignored):
    """``{"copied", "ignored", "missing"}``: the net's layers the file set (all or some of their blobs), the
    file's layers with blobs that match no layer of the net, and the net's layers with parameters the file did
    not touch (they keep their filler values)."""
    copied, missing = [], []
    for layer in net.layers:
        if layer.blobs:
            hit = any(_blob_key(b) in copied_blobs for b in layer.blobs)
            (copied if hit else missing).append(layer.name)
    return {"copied": copied, "ignored": ignored, "missing": missing}


def _rename_hint(name):
    return ("; if the number of classes (or outputs) changed, rename layer '%s' in the net so that this file's "
            "blobs are skipped and it starts from its filler" % name)


def copy_from_net_param(net, source, origin="<weights>"):
    """Copy blobs from a decoded (and upgraded) NetParameter into ``net``.

    Returns
    -------
    dict
        ``{"copied": [...], "ignored": [...], "missing": [...]}``, see :func:`copy_trained_layers`.
    """
    targets = _target_layers(net)
    copied_blobs, ignored = set(), []
    for src in source.layer:
        if not src.blobs:
            continue
        target = targets.get(src.name)
        if target is None:
            ignored.append(src.name)
            continue
        kind, blobs = target
        if len(src.blobs) != len(blobs):
            raise WeightsError("%s: incompatible number of blobs for layer '%s' (%s): the file has %d, the net "
                               "has %d" % (origin, src.name, kind, len(src.blobs), len(blobs)))
        for j, (bp, blob) in enumerate(zip(src.blobs, blobs)):
            shape, legacy = blob_proto_shape(bp)
            if not _shape_matches(shape, legacy, blob.shape):
                raise WeightsError("%s: cannot copy param %d of layer '%s' (%s): shape mismatch; the file has %s%s, "
                                   "the net has %s%s" % (origin, j, src.name, kind, _fmt(shape),
                                                         " (legacy 4-D)" if legacy else "", _fmt(blob.shape),
                                                         _rename_hint(src.name)))
            values = blob_proto_array(bp)
            if values.size != blob.count:
                raise WeightsError("%s: param %d of layer '%s' holds %d values, its shape %s needs %d"
                                   % (origin, j, src.name, values.size, _fmt(shape), blob.count))
            blob.data[...] = values.reshape(blob.shape)   # in place: test nets share these arrays
            copied_blobs.add(_blob_key(blob))
    return _report(net, copied_blobs, ignored)


def copy_from_hdf5(net, path):
    import h5py
    targets = _target_layers(net)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError("%s: cannot open as HDF5: %s" % (path, e)) from None
    copied_blobs, ignored = set(), []
    with f:
        if "data" not in f:
            raise WeightsError("%s: HDF5 weights need a root group 'data' (Caffe layout /data/<layer>/<i>)" % path)
        data = f["data"]
        for name in data:
            target = targets.get(name)
            group = data[name]
            if target is None or not hasattr(group, "keys"):
                if hasattr(group, "keys") and len(group):
                    ignored.append(name)
                continue
            kind, blobs = target
            keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
            if len(keys) > len(blobs):
                raise WeightsError("%s: incompatible number of blobs for layer '%s' (%s): the file has %d, the net "
                                   "has %d" % (path, name, kind, len(keys), len(blobs)))
            for key in keys:
                if not key.isdigit() or int(key) >= len(blobs):
                    raise WeightsError("%s: unexpected dataset /data/%s/%s" % (path, name, key))
                j = int(key)
                arr = np.asarray(group[key])
                blob = blobs[j]
                if tuple(arr.shape) != blob.shape:
                    raise WeightsError("%s: cannot copy /data/%s/%s: shape mismatch; the file has %s, the net has %s%s"
                                       % (path, name, key, _fmt(arr.shape), _fmt(blob.shape), _rename_hint(name)))
                blob.data[...] = arr
                copied_blobs.add(_blob_key(blob))
    return _report(net, copied_blobs, ignored)


def copy_trained_layers(net, path):
    """Load weights from ``path`` (HDF5 by signature, else binary protobuf) into ``net`` by layer name.

    Returns
    -------
    dict
        ``"copied"``: the net's layers whose parameters the file set; ``"ignored"``: the file's layers with
        blobs that no layer of the net is named after (Caffe logs "Ignoring source layer"); ``"missing"``: the
        net's layers with parameters the file does not name, which keep their filler values. Renaming a layer
        (say ``score`` to ``score_4classes`` when the class count changes) moves it from "copied" to "missing".
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError("weights file '%s' does not exist" % path)
    if is_hdf5(path):
        return copy_from_hdf5(net, path)
    with open(path, "rb") as f:
        raw = f.read()
    source = proto.upgrade_net(proto.decode(raw, "NetParameter", filename=path))
    return copy_from_net_param(net, source, path)


def blob_to_proto(blob, write_diff=False):
    bp = proto.Message("BlobProto")
    bp.mutable("shape").dim = list(blob.shape)
    if blob.dtype == np.float64:
        bp.double_data = np.ascontiguousarray(blob.data, dtype=np.float64).ravel()
        if write_diff:
            bp.double_diff = np.ascontiguousarray(blob.diff, dtype=np.float64).ravel()
    else:
        bp.data = np.ascontiguousarray(blob.data, dtype=np.float32).ravel()
        if write_diff:
            bp.diff = np.ascontiguousarray(blob.diff, dtype=np.float32).ravel()
    return bp


def net_to_proto(net, write_diff=False):
    """``NetParameter`` with each layer's definition and blobs (Caffe's ``Net::ToProto``)."""
    param = proto.Message("NetParameter")
    param.name = net.name
    for layer in net.layers:
        lp = layer.layer_param.copy()
        lp.clear("blobs")
        lp.blobs = [blob_to_proto(b, write_diff) for b in layer.blobs]
        param.layer.append(lp)
    return param


def save_weights(net, path, write_diff=False):
    """Write ``net``'s weights: HDF5 (``/data/<layer>/<i>``) when ``path`` ends in ``.h5``, else binaryproto."""
    path = os.fspath(path)
    if path.endswith(".h5"):
        import h5py
        owners = {id(b) for b in net.learnable_params}
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                data = f.create_group("data")
                diff = f.create_group("diff") if write_diff else None
                for layer in net.layers:
                    if layer.name in data:
                        continue
                    g = data.create_group(layer.name)
                    gd = diff.create_group(layer.name) if diff is not None else None
                    for j, blob in enumerate(layer.blobs):
                        if id(blob) not in owners:
                            continue  # shared parameter: written by its owner only
                        g.create_dataset(str(j), data=blob.data)
                        if gd is not None:
                            gd.create_dataset(str(j), data=blob.diff)
        return
    write_bytes(path, proto.encode(net_to_proto(net, write_diff)))
