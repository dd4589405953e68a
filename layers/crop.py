"""Crop: cut bottom 0 down to the size of bottom 1 from ``crop_param.axis`` on.

``axis`` (default 2, negative counts from the end) = ``a``. For every axis ``i`` of the N-D bottoms::

    i <  a:  top dim = bottom0 dim,  offset 0
    i >= a:  top dim = bottom1 dim,  offset = offset[0] (one value given), offset[i - a] (one per axis
             from a on), or 0 (none given)
    y = x0[..., off_a : off_a + dim_a, ...]          (requires bottom0 dim - offset >= bottom1 dim)

Backward: ``dE/dx0`` is zero outside that slice and ``dE/dy`` inside it; bottom 1 is only a size
reference and gets a zero gradient.

Automatic offsets
-----------------
Jon Long's "future" Caffe (used by the published CRF-RNN deploy net, whose Crop layers give no ``offset``)
derives the offsets from the geometry of the layers between the two bottoms and a common ancestor blob.
Every layer maps a top coordinate ``y`` to a bottom coordinate ``x = scale * y + shift`` per axis
(:func:`coordinate_map`): convolution and pooling ``x = s*y + (e - 1)/2 - p`` with the dilated kernel extent
``e``, deconvolution the inverse ``x = (y - (e - 1)/2 + p) / s``, point-wise layers the identity. Composing the
maps from each bottom back to the first common ancestor gives ``x = A_0 y_0 + B_0`` and ``x = A_1 y_1 + B_1``;
with ``A_0 == A_1`` the origin of bottom 1 lies at ``(B_1 - B_0) / A_0`` in bottom 0, rounded to the nearest
integer (halves away from zero). :meth:`CropLayer.infer_offsets` does this; the net calls it while setting up
a Crop that has no ``offset`` (BVLC Caffe would use 0 instead).
"""
import math
from collections import OrderedDict

from crfrnn_np.errors import NetError
from crfrnn_np.layer import Layer, register_layer

#: Layer types whose output has the coordinates of their (first) bottom on every axis.
POINTWISE_TYPES = frozenset([
    "ReLU", "Sigmoid", "TanH", "Dropout", "Split", "Eltwise", "Softmax", "AbsVal", "BNLL", "Power", "Exp",
    "Log", "ELU", "PReLU", "Threshold", "Clip", "Swish", "BatchNorm", "Scale", "Bias", "LRN", "MVN",
    "MultiStageMeanfield", "PermutohedralFilter", "Compatibility", "UnaryAdd",
])


def _param_of(layer):
    """The LayerParameter of a Layer object, or the argument itself if it already is one."""
    return getattr(layer, "layer_param", layer)


def _per_axis(p, name, h_name, w_name, n, default, what):
    """Caffe's repeated-or-h/w convolution geometry field, one value per spatial axis (``n`` of them)."""
    if h_name and (p.has(h_name) or p.has(w_name)):
        if n != 2:
            raise NetError("%s_h/%s_w need 2 spatial axes, the blob has %d" % (what, what, n))
        return [int(getattr(p, h_name)), int(getattr(p, w_name))]
    values = [int(v) for v in getattr(p, name)] if name else []
    if not values:
        return [default] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise NetError("%s gives %d values for %d spatial axes" % (what, len(values), n))
    return values


def _conv_geometry(p, num_axes):
    """(channel axis, kernel, stride, pad, dilation) lists of a ConvolutionParameter."""
    axis = int(p.axis)
    axis = axis + num_axes if axis < 0 else axis
    n = num_axes - axis - 1
    kernel = _per_axis(p, "kernel_size", "kernel_h", "kernel_w", n, 0, "kernel")
    stride = _per_axis(p, "stride", "stride_h", "stride_w", n, 1, "stride")
    pad = _per_axis(p, "pad", "pad_h", "pad_w", n, 0, "pad")
    dilation = _per_axis(p, "dilation", "", "", n, 1, "dilation")
    return axis, kernel, stride, pad, dilation


def coordinate_map(layer, num_axes):
    """Per-axis affine map from a layer's top coordinates to its (first) bottom's coordinates.

    Parameters
    ----------
    layer : Layer or LayerParameter Message
        A set-up Crop layer object contributes its actual offsets; a bare LayerParameter its ``offset`` fields.
    num_axes : int
        Number of axes of the layer's top blob (4 for N x C x H x W).

    Returns
    -------
    list or None
        ``None`` if the type has no coordinate map at all (InnerProduct, Reshape, ...). Otherwise a list of
        ``num_axes`` entries, each ``(scale, shift)`` meaning ``x_bottom = scale * y_top + shift`` on that
        axis, or ``None`` where the axis has no spatial meaning (a convolution's channel axis).
    """
    p = _param_of(layer)
    kind = p.type
    identity = [(1.0, 0.0)] * num_axes
    if kind in POINTWISE_TYPES:
        return identity
    if kind == "Concat":
        axis = int(p.concat_param.concat_dim) if p.concat_param.has("concat_dim") else int(p.concat_param.axis)
        out = list(identity)
        out[axis + num_axes if axis < 0 else axis] = None
        return out
    if kind in ("Convolution", "Deconvolution"):
        try:
            axis, kernel, stride, pad, dilation = _conv_geometry(p.convolution_param, num_axes)
        except NetError as exc:
            raise NetError("layer '%s' (%s): %s" % (p.name, kind, exc)) from None
        out = list(identity)
        out[axis] = None
        for i in range(num_axes - axis - 1):
            centre = dilation[i] * (kernel[i] - 1) / 2.0 - pad[i]     # (extent - 1) / 2 - pad
            if kind == "Convolution":
                out[axis + 1 + i] = (float(stride[i]), centre)
            else:
                out[axis + 1 + i] = (1.0 / stride[i], -centre / stride[i])
        return out
    if kind == "Pooling":
        q = p.pooling_param
        if num_axes != 4:
            return None
        if q.global_pooling:
            return [(1.0, 0.0), (1.0, 0.0), None, None]
        if q.has("kernel_h") or q.has("kernel_w"):
            kernel = [int(q.kernel_h), int(q.kernel_w)]
        else:
            kernel = [int(q.kernel_size)] * 2
        stride = [int(q.stride_h), int(q.stride_w)] if q.has("stride_h") or q.has("stride_w") \
            else [int(q.stride)] * 2
        pad = [int(q.pad_h), int(q.pad_w)] if q.has("pad_h") or q.has("pad_w") else [int(q.pad)] * 2
        out = [(1.0, 0.0), (1.0, 0.0)]
        for i in range(2):
            out.append((float(stride[i]), (kernel[i] - 1) / 2.0 - pad[i]))
        return out
    if kind == "Crop":
        offsets = getattr(layer, "offsets", None)
        inferred = getattr(layer, "inferred_offsets", None)
        if offsets is None and inferred is not None and not p.crop_param.offset:
            offsets = [0] * (num_axes - len(inferred)) + list(inferred)
        if offsets is None or len(offsets) != num_axes:
            offsets = CropLayer.offsets_from_param(p, num_axes)
        return [(1.0, float(o)) for o in offsets]
    return None


def round_half_away(x):
    """C's ``round``: nearest integer, halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


class LayerGraph:
    """Minimal producer index for :meth:`CropLayer.infer_offsets`.

    Add layers in net order with :meth:`add`; :meth:`producer` answers with the layer that first created a
    blob. In-place layers (a top named like a bottom) are skipped: they rewrite a blob without moving it.

    Parameters
    ----------
    blobs : mapping name -> Blob, optional
        Lets :meth:`num_axes` answer from the blob shapes.
    """

    def __init__(self, blobs=None):
        self._producer = {}
        self.blobs = blobs if blobs is not None else {}

    def add(self, layer, bottom_names, top_names):
        for name in top_names:
            if name not in self._producer:
                self._producer[name] = (layer, list(bottom_names))

    def producer(self, blob_name):
        """``(layer, [bottom names])`` of the layer that made ``blob_name``, or None for a net input."""
        return self._producer.get(blob_name)


@register_layer("Crop")
class CropLayer(Layer):
    """Crop bottom 0 to bottom 1's size from ``crop_param.axis`` on.

    Attributes
    ----------
    offsets : list of int
        The offset of every axis (0 before ``axis``) as of the last ``reshape``.
    inferred_offsets : list of int or None
        Offsets for the axes from ``axis`` on computed by :meth:`infer_offsets`; used when the prototxt
        gives no ``offset``.
    """

    exact_num_bottom = 2
    exact_num_top = 1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inferred_offsets = None
        self.offsets = None

    @staticmethod
    def offsets_from_param(p, num_axes):
        """Offsets of every axis from a Crop LayerParameter's ``crop_param`` (no checks, no inference)."""
        cp = p.crop_param
        start = int(cp.axis)
        start = start + num_axes if start < 0 else start
        given = [int(o) for o in cp.offset]
        out = [0] * num_axes
        for i in range(max(start, 0), num_axes):
            if len(given) == 1:
                out[i] = given[0]
            elif len(given) > 1 and i - start < len(given):
                out[i] = given[i - start]
        return out

    def _check_num_axes(self, bottom):
        if bottom[0].num_axes != bottom[1].num_axes:
            raise self.shape_error("bottoms must have the same number of axes: '%s' is %s, '%s' is %s"
                                   % (bottom[0].name, bottom[0].shape_string(),
                                      bottom[1].name, bottom[1].shape_string()))

    def layer_setup(self, bottom, top):
        self._check_num_axes(bottom)
        n = bottom[0].num_axes
        start = self._start_axis(bottom[0])
        given = self.layer_param.crop_param.offset
        if len(given) > 1 and start + len(given) != n:
            raise self.error("crop_param gives %d offsets; it needs 1 or one per axis from axis %d of the %d-axis "
                             "bottoms (%d)" % (len(given), start, n, n - start), field="crop_param")
        graph = getattr(self, "graph", None)
        if not given and graph is not None and self.inferred_offsets is None:
            self.infer_offsets(graph, n, required=False)

    def _start_axis(self, blob):
        try:
            return blob.canonical_axis(int(self.layer_param.crop_param.axis))
        except Exception as exc:
            raise self.shape_error(str(exc), field="crop_param") from None

    def reshape(self, bottom, top):
        self._check_num_axes(bottom)                # again: a net's new input shape reaches only reshape
        b0, b1 = bottom
        n = b0.num_axes
        start = self._start_axis(b0)
        if self.inferred_offsets is not None and not self.layer_param.crop_param.offset:
            if len(self.inferred_offsets) != n - start:
                raise self.error("inferred %d offsets but the bottoms have %d axes from axis %d"
                                 % (len(self.inferred_offsets), n - start, start))
            offsets = [0] * start + list(self.inferred_offsets)
        else:
            offsets = self.offsets_from_param(self.layer_param, n)
        shape = list(b0.shape)
        for i in range(start, n):
            shape[i] = b1.shape[i]
            if b0.shape[i] - offsets[i] < b1.shape[i]:
                raise self.shape_error("invalid crop in axis %d: bottom '%s' %s minus offset %d is smaller than "
                                       "bottom '%s' %s" % (i, b0.name, b0.shape_string(), offsets[i],
                                                           b1.name, b1.shape_string()), field="crop_param")
        self.offsets = offsets
        self._slices = tuple(slice(o, o + d) for o, d in zip(offsets, shape))
        top[0].reshape(shape)

    def forward_cpu(self, bottom, top):
        top[0].data[...] = bottom[0].data[self._slices]

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            diff = bottom[0].diff
            diff[...] = 0
            diff[self._slices] = top[0].diff
        if len(propagate_down) > 1 and propagate_down[1]:
            bottom[1].diff[...] = 0

    def _device_view(self, bottom0, top0):
        from .copy_cuda import as_4d
        return as_4d(bottom0.shape, self.offsets, top0.shape)

    def forward_gpu(self, bottom, top):
        from .copy_cuda import copy_block, crop_view
        view = self._device_view(bottom[0], top[0])
        if view is None:                     # no 4-D view (copy_cuda.as_4d): the host does it
            return self.forward_cpu(bottom, top)
        shape4, offsets4, top4 = view
        copy_block(crop_view(bottom[0].gpu_data(), shape4, offsets4, top4),
                   top[0].mutable_gpu_data().reshape(top4))

    def backward_gpu(self, top, propagate_down, bottom):
        from crfrnn_np import cuda_ops
        from .copy_cuda import copy_block, crop_view
        view = self._device_view(bottom[0], top[0])
        if view is None:
            return self.backward_cpu(top, propagate_down, bottom)
        shape4, offsets4, top4 = view
        if propagate_down[0]:
            dx = bottom[0].mutable_gpu_diff()
            cuda_ops.fill(dx, 0)
            copy_block(top[0].gpu_diff().reshape(top4), crop_view(dx, shape4, offsets4, top4))
        if len(propagate_down) > 1 and propagate_down[1]:
            cuda_ops.fill(bottom[1].mutable_gpu_diff(), 0)

    # -- automatic offsets ---------------------------------------------------------------------------------
    def infer_offsets(self, graph, num_axes=None, required=True):
        """Compute and store the offsets from the coordinate maps of the layers behind both bottoms.

        Parameters
        ----------
        graph : object
            ``graph.producer(blob_key) -> (layer, [bottom keys])`` or None for a blob no layer made (a net
            input); ``layer`` is a Layer or a LayerParameter. Keys are blob names, or versioned names when
            the graph also has ``latest_key(name)`` (the Net's graph: in-place writers then lead on to the
            earlier version; :class:`LayerGraph` skips in-place writers instead). If ``graph.blobs`` maps
            names to Blobs, the number of axes is read there.
        num_axes : int, optional
            Number of axes of the bottoms (default: from ``graph.blobs``, else 4).
        required : bool
            With False, bottoms that share no ancestor through layers with coordinate maps (two net inputs,
            say) keep BVLC Caffe's zero offsets and None is returned instead of raising. The net's set-up
            uses this: ``Net`` hands every layer its graph as ``layer.graph`` during ``setup``, and a Crop
            without ``offset`` calls this method from ``layer_setup``.

        Returns
        -------
        list of int or None
            One offset per axis from ``crop_param.axis`` on (also stored in ``self.inferred_offsets``).

        Raises
        ------
        NetError
            No common ancestor (when ``required``), a path that changes the meaning of a cropped axis,
            different scales, or a negative offset.
        """
        names = list(self.layer_param.bottom)
        if len(names) != 2:
            raise self.error("needs 2 bottom names to infer offsets, got %d" % len(names))
        if num_axes is None:
            blobs = getattr(graph, "blobs", None) or {}
            num_axes = blobs[names[0]].num_axes if names[0] in blobs else 4
        start = int(self.layer_param.crop_param.axis)
        start = start + num_axes if start < 0 else start
        if not 0 <= start < num_axes:
            raise self.error("crop_param.axis %d out of range for %d-axis bottoms"
                             % (self.layer_param.crop_param.axis, num_axes), field="crop_param")
        keys = [graph.latest_key(nm) for nm in names] if hasattr(graph, "latest_key") else names
        maps0, stops0 = self._ancestor_maps(graph, keys[0], num_axes)
        maps1, stops1 = self._ancestor_maps(graph, keys[1], num_axes)
        common = next((b for b in maps1 if b in maps0), None)
        if common is None:
            if not required:
                return None
            stops = sorted(set(stops0) | set(stops1))
            raise self.error("cannot infer crop offsets: bottoms '%s' and '%s' have no common ancestor blob%s"
                             % (names[0], names[1],
                                " (no coordinate map for layer(s) %s)" % ", ".join(stops) if stops else ""))
        m0, m1 = maps0[common], maps1[common]
        offsets = []
        for i in range(start, num_axes):
            if m0[i] is None or m1[i] is None:
                raise self.error("cannot infer the crop offset of axis %d: the path from '%s' to '%s' "
                                 "changes what that axis means" % (i, names[0] if m0[i] is None else names[1],
                                                                   common))
            (a0, b0), (a1, b1) = m0[i], m1[i]
            if not math.isclose(a0, a1, rel_tol=1e-9):
                raise self.error("cannot infer the crop offset of axis %d: '%s' and '%s' have different scales "
                                 "relative to '%s' (%g and %g)" % (i, names[0], names[1], common, a0, a1))
            off = round_half_away((b1 - b0) / a0)
            if off < 0:
                raise self.error("inferred a negative crop offset %d on axis %d ('%s' starts before '%s' in the "
                                 "coordinates of '%s')" % (off, i, names[1], names[0], common))
            offsets.append(off)
        self.inferred_offsets = offsets
        return offsets

    @staticmethod
    def _ancestor_maps(graph, name, num_axes):
        """Breadth-first walk to the inputs: blob name -> composed per-axis map from ``name``'s coordinates.

        Returns the ordered dict and the names of layers at which the walk stopped for lack of a map.
        """
        maps = OrderedDict([(name, [(1.0, 0.0)] * num_axes)])
        queue, stops = [name], []
        while queue:
            blob = queue.pop(0)
            found = graph.producer(blob)
            if found is None:
                continue
            layer, bottoms = found
            lmap = coordinate_map(layer, num_axes)
            if lmap is None:
                stops.append("'%s' (%s)" % (_param_of(layer).name, _param_of(layer).type))
                continue
            m = maps[blob]
            composed = []
            for outer, inner in zip(lmap, m):
                if outer is None or inner is None:
                    composed.append(None)
                else:
                    composed.append((outer[0] * inner[0], outer[0] * inner[1] + outer[1]))
            follow = bottoms[:1] if _param_of(layer).type == "Crop" else bottoms
            for b in follow:
                if b not in maps:
                    maps[b] = composed
                    queue.append(b)
        return maps, stops
