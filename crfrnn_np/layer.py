"""Layer base class and the layer registry.

The contract is Caffe's (and pycaffe's Python-layer names):

``setup(bottom, top)``
    Called once by the net: checks the blob counts declared as class attributes, calls ``layer_setup``
    (read parameters, create ``self.blobs``), ``reshape`` and sets the loss weights.
``reshape(bottom, top)``
    Shape the tops (and internal buffers) from the bottoms. Called again whenever an input's shape changes.
``forward(bottom, top)``
    Computes the tops; returns this layer's weighted loss ``sum_i loss_weight_i * sum(top_i.data)``.
``backward(top, propagate_down, bottom)``
    From the top diffs, **overwrite** ``bottom[i].diff`` where ``propagate_down[i]`` and **accumulate** the
    parameter diffs ``self.blobs[j].diff`` where ``self.param_propagate_down[j]``.

Subclasses implement ``forward_cpu``/``backward_cpu`` and may add ``forward_gpu``/``backward_gpu``; the base
``forward``/``backward`` call the GPU methods when the backend is ``"cuda"`` and the class defines them, and
fall back to the CPU code otherwise, as Caffe does.

Registry: ``@register_layer("Convolution")`` above a class makes ``type: "Convolution"`` in a prototxt
create it. Registering a type twice raises; an unknown type raises with the sorted list of known types.
"""
import numpy as np

from .blob import Blob
from .errors import NetError, ShapeError

_REGISTRY = {}


def register_layer(type_name):
    """Class decorator: register a Layer subclass under its prototxt ``type`` string."""

    def deco(cls):
        if type_name in _REGISTRY:
            raise ValueError("layer type %r registered twice (%s and %s)"
                             % (type_name, _REGISTRY[type_name].__name__, cls.__name__))
        cls.type = type_name
        _REGISTRY[type_name] = cls
        return cls

    return deco


def layer_types():
    """Sorted list of registered type strings."""
    return sorted(_REGISTRY)


def layer_class(type_name, where=""):
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise NetError("%sunknown layer type '%s' (known types: %s)"
                       % (where, type_name, ", ".join(layer_types()))) from None


def create_layer(layer_param, phase="TEST", dtype=np.float32, backend="cpu"):
    """Instantiate the registered class for ``layer_param.type``."""
    where = layer_param.where("type")
    where = where + ": " if where else ""
    cls = layer_class(layer_param.type, "%slayer '%s': " % (where, layer_param.name))
    return cls(layer_param, phase=phase, dtype=dtype, backend=backend)


class Layer:
    """Base class of every layer (see the module docstring for the contract).

    Parameters
    ----------
    layer_param : crfrnn_np.proto.Message
        The ``LayerParameter`` of this layer (already filtered and upgraded).
    phase : {"TRAIN", "TEST"}
        The net's phase; ``layer_param.phase`` overrides it when set.
    dtype : numpy dtype
        ``float32`` or ``float64``: the dtype of every blob this layer creates.
    backend : {"cpu", "cuda"}
    """

    type = None
    #: Blob-count rules checked by ``setup`` (``None`` = no rule).
    exact_num_bottom = None
    min_num_bottom = None
    max_num_bottom = None
    exact_num_top = None
    min_num_top = None
    max_num_top = None
    #: True for layers whose number of tops must equal the number of bottoms (Split excepted).
    equal_num_bottom_top = False
    #: Loss layers get ``loss_weight: 1`` on top 0 when the prototxt gives none.
    is_loss = False
    #: Bottoms that carry no gradient by design, index -> why (a label, the image that only fixes a lattice's
    #: features). ``force_backward`` leaves them out and the gradient checker skips them, saying why.
    no_gradient_bottoms = {}
    #: False for layers that are not differentiable where their inputs tie (MAX pooling, Eltwise MAX): a
    #: net's ReLU outputs tie at 0 in every dead window, so the gradient checker draws their bottoms at random.
    differentiable_at_ties = True

    def __init__(self, layer_param, phase="TEST", dtype=np.float32, backend="cpu"):
        self.layer_param = layer_param
        self.name = layer_param.name
        self.phase = layer_param.phase if layer_param.has("phase") else phase
        self.dtype = np.dtype(dtype)
        self.backend = backend
        self.blobs = []
        self.param_propagate_down = []
        self.loss_weights = []
        #: Set by the Net before ``setup``: the net's shared LatticeCache (None for a layer made on its own).
        self.lattice_cache = None

    # -- helpers for subclasses ----------------------------------------------------------------------------
    def where(self, field=None):
        """``'file:line:col: layer 'name' (Type): '`` prefix for error messages."""
        loc = self.layer_param.where(field) or self.layer_param.where()
        return "%slayer '%s' (%s): " % (loc + ": " if loc else "", self.name, self.type)

    def error(self, message, cls=NetError, field=None):
        """Build (not raise) an error whose message names this layer and its prototxt position."""
        return cls(self.where(field) + message)

    def shape_error(self, message, field=None):
        return self.error(message, ShapeError, field)

    def make_blob(self, shape, name=""):
        """A new parameter/internal Blob of this layer's dtype."""
        return Blob(shape, self.dtype, name or self.name)

    # -- the contract ----------------------------------------------------------------------------------------
    def setup(self, bottom, top):
        """Check blob counts, ``layer_setup``, ``reshape``, set loss weights. Do not override."""
        self.check_blob_counts(bottom, top)
        self.layer_setup(bottom, top)
        self.reshape(bottom, top)
        self.set_loss_weights(top)

    def layer_setup(self, bottom, top):
        """Read parameters and create ``self.blobs`` (once)."""

    def reshape(self, bottom, top):
        raise NotImplementedError("%s.reshape" % type(self).__name__)

    def forward(self, bottom, top):
        """Run the backend's forward; return the weighted loss of this layer's tops."""
        if self.backend == "cuda" and hasattr(self, "forward_gpu"):
            self.forward_gpu(bottom, top)
        else:
            self.forward_cpu(bottom, top)
        loss = 0.0
        for t, w in zip(top, self.loss_weights):
            if w:
                loss += float(w) * float(np.sum(t.cpu_data(), dtype=np.float64))
        return loss

    def backward(self, top, propagate_down, bottom):
        if self.backend == "cuda" and hasattr(self, "backward_gpu"):
            self.backward_gpu(top, propagate_down, bottom)
        else:
            self.backward_cpu(top, propagate_down, bottom)

    def forward_cpu(self, bottom, top):
        raise NotImplementedError("%s.forward_cpu" % type(self).__name__)

    def backward_cpu(self, top, propagate_down, bottom):
        """Default: the layer has no gradient; asking for one is an error (Caffe: LOG(FATAL))."""
        if any(propagate_down):
            raise self.error("this layer cannot propagate a gradient to its bottoms")

    def allow_force_backward(self, bottom_index):
        """Whether ``force_backward`` may make this bottom receive a gradient: not those listed in
        :attr:`no_gradient_bottoms` (labels never do)."""
        return bottom_index not in self.no_gradient_bottoms

    # -- checks and loss weights -----------------------------------------------------------------------------
    def check_blob_counts(self, bottom, top):
        nb, nt = len(bottom), len(top)

        def bad(what, rule, n, got):
            return self.error("needs %s %d %s blob(s), got %d" % (rule, n, what, got))

        if self.exact_num_bottom is not None and nb != self.exact_num_bottom:
            raise bad("bottom", "exactly", self.exact_num_bottom, nb)
        if self.min_num_bottom is not None and nb < self.min_num_bottom:
            raise bad("bottom", "at least", self.min_num_bottom, nb)
        if self.max_num_bottom is not None and nb > self.max_num_bottom:
            raise bad("bottom", "at most", self.max_num_bottom, nb)
        if self.exact_num_top is not None and nt != self.exact_num_top:
            raise bad("top", "exactly", self.exact_num_top, nt)
        if self.min_num_top is not None and nt < self.min_num_top:
            raise bad("top", "at least", self.min_num_top, nt)
        if self.max_num_top is not None and nt > self.max_num_top:
            raise bad("top", "at most", self.max_num_top, nt)
        if self.equal_num_bottom_top and nb != nt:
            raise self.error("needs as many tops as bottoms, got %d bottoms and %d tops" % (nb, nt))

    def set_loss_weights(self, top):
        """Loss weights from the prototxt, or 1 on top 0 for loss layers; loss tops get diff = weight."""
        weights = [float(w) for w in self.layer_param.loss_weight]
        if weights and len(weights) != len(top):
            raise self.error("loss_weight must be given once per top (%d tops, %d weights)"
                             % (len(top), len(weights)), field="loss_weight")
        if not weights:
            weights = [0.0] * len(top)
            if self.is_loss and top:
                weights[0] = 1.0
        self.loss_weights = weights
        for t, w in zip(top, weights):
            if w:
                if self.backend == "cuda":              # made on the device: nothing crosses
                    from . import cuda_ops
                    cuda_ops.fill(t.mutable_gpu_diff(), w)
                else:
                    t.diff[...] = w

    # -- parameter specs ---------------------------------------------------------------------------------------
    def param_spec(self, i):
        """The ``ParamSpec`` of parameter blob ``i`` (a default one when the prototxt gives fewer)."""
        from .proto import Message
        params = self.layer_param.param
        return params[i] if i < len(params) else Message("ParamSpec")

    def __repr__(self):
        return "<%s layer '%s'>" % (self.type, self.name)


class NeuronLayer(Layer):
    """Base of the element-wise layers (Caffe's ``NeuronLayer``): one bottom, one top of the same shape,
    possibly in place (top is bottom)."""

    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)
