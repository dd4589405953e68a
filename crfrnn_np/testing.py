"""Helpers for tests and experiments: build one layer from a prototxt snippet."""
import numpy as np

from .blob import Blob
from .errors import NetError


def parse_layer(snippet):
    """A ``LayerParameter`` from ``'layer { ... }'`` text or from the body of such a block."""
    from . import proto
    text = snippet.strip()
    if text.startswith("layer"):
        net_param = proto.parse(text, "NetParameter")
        if len(net_param.layer) != 1:
            raise NetError("expected exactly one layer in the snippet, got %d" % len(net_param.layer))
        return net_param.layer[0]
    return proto.parse(text, "LayerParameter")


def make_layer(snippet, bottoms, dtype=np.float64, phase="TRAIN", backend="cpu", num_top=None):
    """Create a layer and its blobs and call ``setup``.

    Parameters
    ----------
    snippet : str
        ``layer { name: "x" type: "ReLU" bottom: "a" top: "a" }`` or just its body.
    bottoms : list of ndarray or Blob
        Bottom data, in order; arrays are copied into new Blobs of ``dtype``.
    num_top : int, optional
        Number of tops when the snippet names none (default: len(layer_param.top) or 1).

    Returns
    -------
    layer, bottom_blobs, top_blobs
        In-place tops (a top named like the bottom at the same index) are the bottom Blob itself.
    """
    from .layer import create_layer
    import crfrnn_np.layers  # noqa: F401  (registers the layer types)
    param = parse_layer(snippet)
    bottom = []
    for i, b in enumerate(bottoms):
        if isinstance(b, Blob):
            bottom.append(b)
        else:
            name = param.bottom[i] if i < len(param.bottom) else "bottom%d" % i
            blob = Blob(np.shape(b), dtype, name)
            blob.data = np.asarray(b, dtype=dtype)
            bottom.append(blob)
    n_top = len(param.top) if param.top else (num_top or 1)
    top = []
    for j in range(n_top):
        name = param.top[j] if j < len(param.top) else "top%d" % j
        if j < len(param.bottom) and j < len(bottom) and param.bottom[j] == name:
            top.append(bottom[j])
        else:
            top.append(Blob((), dtype, name))
    layer = create_layer(param, phase=phase, dtype=dtype, backend=backend)
    layer.setup(bottom, top)
    return layer, bottom, top
