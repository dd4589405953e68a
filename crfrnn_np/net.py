"""Net: a static, ordered list of layers built from a NetParameter (Caffe's ``Net``).

Construction (``Net.__init__``), in Caffe's order:

1. read the model (path, prototxt text or parsed ``NetParameter``) and upgrade legacy forms;
2. keep the layers whose include/exclude rules match the net state (phase, level, stages);
3. insert ``Split`` layers where a top fans out (``insert_splits.py``);
4. create each layer, wire its bottoms to blobs produced earlier (a top named like the bottom at the same
   index is *in place*: the same Blob), and call ``setup``;
5. share parameters by ``ParamSpec.name`` and decide which layers and blobs need a backward pass: a parameter
   needs a gradient iff its ``lr_mult != 0``; a layer runs backward iff it contributes to a loss and any bottom
   or parameter needs a gradient; ``force_backward`` forces every layer and every bottom its layer allows;
   ``propagate_down`` in a layer overrides per bottom.

Inputs are the tops of ``Input`` layers; outputs are the blobs nobody consumes, sorted by name (as Caffe's
``std::set``). ``forward(**inputs)`` reshapes the whole net when an input's shape changes.
"""
import collections
import os

import numpy as np

from . import proto
from .blob import Blob
from .errors import Error, NetError, ShapeError, BackendError
from .insert_splits import insert_splits
from .layer import create_layer

_DTYPES = {"float32": np.float32, "float64": np.float64}


def _load_net_param(model):
    """``NetParameter`` Message from a path, a shipped net's name, prototxt text or a Message; always upgraded,
    never shared."""
    if isinstance(model, proto.Message):
        return proto.upgrade_net(model.copy())
    if isinstance(model, (str, os.PathLike)):
        text = str(model)
        if "\n" not in text and "{" not in text:          # a path, or the name of a shipped net
            from crfrnn_np.models import read_net
            return read_net(text)
        if os.path.exists(text):
            return proto.read_net(text)
        return proto.upgrade_net(proto.parse(text, "NetParameter"))
    raise NetError("model must be a path, prototxt text or a NetParameter, got %s" % type(model).__name__)


def _rule_met(rule, state):
    """Caffe's ``StateMeetsRule``."""
    if rule.has("phase") and rule.phase != state["phase"]:
        return False
    if rule.has("min_level") and state["level"] < rule.min_level:
        return False
    if rule.has("max_level") and state["level"] > rule.max_level:
        return False
    if any(s not in state["stages"] for s in rule.stage):
        return False
    if any(s in state["stages"] for s in rule.not_stage):
        return False
    return True


def filter_layers(layers, state):
    """Caffe's ``FilterNet``: keep the layers whose include/exclude rules match ``state``."""
    kept = []
    for lp in layers:
        if lp.include and lp.exclude:
            raise NetError("%s: layer '%s': specify either include or exclude rules, not both"
                           % (lp.where() or "<net>", lp.name))
        if lp.include:
            keep = any(_rule_met(r, state) for r in lp.include)
        else:
            keep = not any(_rule_met(r, state) for r in lp.exclude)
        if keep:
            kept.append(lp)
    return kept


class _Graph:
    """Read-only view of the graph built so far, for layers that derive settings from their producers.

    ``producer(name)`` returns ``(layer, bottom_keys)`` for the last layer that wrote blob ``name`` before the
    layer being set up, or ``None`` for net inputs. Blob keys are versioned (``"conv1#0"``) so that walking up
    through in-place layers does not loop; plain names mean the latest version.
    """

    def __init__(self):
        self._writers = collections.defaultdict(list)   # name -> [(layer, bottom keys)]

    def add(self, layer, bottom_names, top_names):
        keys = [self.latest_key(n) for n in bottom_names]
        for n in top_names:
            self._writers[n].append((layer, keys))

    def latest_key(self, name):
        return "%s#%d" % (name, len(self._writers[name]) - 1)

    def producer(self, key):
        if "#" in key:
            name, version = key.rsplit("#", 1)
            version = int(version)
        else:
            name, version = key, len(self._writers.get(key, ())) - 1
        writers = self._writers.get(name, ())
        if version < 0 or version >= len(writers):
            return None
        return writers[version]


class Net:
    """A Caffe net: layers, blobs, parameters, forward and backward.

    Parameters
    ----------
    model : str, os.PathLike or Message
        Path of a ``.prototxt``, the prototxt text itself, or a parsed ``NetParameter``.
    weights : str or list of str, optional
        ``.caffemodel`` (binary protobuf) or ``.h5`` weights copied in by layer name after construction.
    phase : {"TEST", "TRAIN"}
    dtype : {"float32", "float64"}
    backend : {"cpu", "cuda"}
    level : int
    stages : sequence of str
    lattice_cache : LatticeCache, optional
        Where the net's CRF layers keep their permutohedral lattices (built once per image and shared by
        every filter of the net). By default each net has its own; a MultiStageMeanfield layer hands its
        net's cache to the step-layer sub-net it runs.
    keep_blobs : bool
        True (default, pycaffe's behaviour): every blob keeps its data after ``forward`` so it can be read and
        a backward can follow. False: an inference-only mode that frees each intermediate blob's arrays right
        after its last consumer has run, so that peak memory is the weights plus a few live activations
        (as in a framework without autograd); outputs and inputs are kept. A net that would need a backward
        (a loss, ``force_backward``) refuses ``backward`` in this mode.
    """

    def __init__(self, model, weights=None, phase="TEST", dtype="float32", backend="cpu", level=0, stages=(),
                 keep_blobs=True, lattice_cache=None):
        if isinstance(phase, str):
            phase = phase.upper()
        if phase not in ("TRAIN", "TEST"):
            raise NetError("phase must be 'TRAIN' or 'TEST', got %r" % (phase,))
        dtype_name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
        if dtype_name not in _DTYPES:
            raise NetError("dtype must be 'float32' or 'float64', got %r" % (dtype,))
        if backend not in ("cpu", "cuda"):
            raise BackendError("backend must be 'cpu' or 'cuda', got %r" % (backend,))
        if backend == "cuda":
            from .backend import check_cuda
            check_cuda(_DTYPES[dtype_name])
        self.phase = phase
        self.dtype = np.dtype(_DTYPES[dtype_name])
        self.backend = backend
        self.keep_blobs = bool(keep_blobs)
        if lattice_cache is None:
            from crfrnn_np.layers.permutohedral_filter import LatticeCache
            lattice_cache = LatticeCache(backend)
        self.lattice_cache = lattice_cache
        param = _load_net_param(model)
        self.net_param = param
        self.name = param.name
        state = {"phase": phase, "level": int(level), "stages": list(stages)}
        for lp in param.layer:
            lp.phase = lp.phase if lp.has("phase") else phase
        layers = insert_splits(filter_layers(param.layer, state))
        self._build(layers, param.force_backward)
        if weights:
            for w in ([weights] if isinstance(weights, (str, os.PathLike)) else weights):
                self.copy_from(w)
        self.params_to_device()

    # -- construction --------------------------------------------------------------------------------------
    def _build(self, layer_params, force_backward):
        import crfrnn_np.layers  # noqa: F401  (registers every layer type)
        self.layers, self.layer_names = [], []
        self.bottom_vecs, self.top_vecs = [], []
        self.bottom_names, self.top_names = [], []
        self.blobs = collections.OrderedDict()
        self.inputs = []
        graph = _Graph()
        consumed = set()
        for lp in layer_params:
            where = lp.where() or "<net>"
            layer = create_layer(lp, phase=self.phase, dtype=self.dtype, backend=self.backend)
            bottom = []
            for b_idx, name in enumerate(lp.bottom):
                if name not in self.blobs:
                    loc = lp.where("bottom") or where
                    raise NetError("%s: layer '%s' (%s): unknown bottom blob '%s' (input %d); known blobs: %s"
                                   % (loc, lp.name, lp.type, name, b_idx, ", ".join(self.blobs) or "none"))
                bottom.append(self.blobs[name])
                consumed.add(name)
            top = []
            for t_idx, name in enumerate(lp.top):
                if t_idx < len(lp.bottom) and lp.bottom[t_idx] == name:
                    top.append(self.blobs[name])            # in place
                    continue
                if name in self.blobs:
                    loc = lp.where("top") or where
                    raise NetError("%s: layer '%s' (%s): top blob '%s' produced by multiple sources"
                                   % (loc, lp.name, lp.type, name))
                blob = Blob((), self.dtype, name)
                self.blobs[name] = blob
                top.append(blob)
                if lp.type == "Input":
                    self.inputs.append(name)
            layer.graph = graph
            layer.lattice_cache = self.lattice_cache
            try:
                layer.setup(bottom, top)
            except Error:
                raise
            except (ValueError, IndexError, TypeError, ZeroDivisionError) as e:
                raise NetError("%s: layer '%s' (%s): set-up failed: %s" % (where, lp.name, lp.type, e)) from e
            finally:
                layer.graph = None
            graph.add(layer, list(lp.bottom), list(lp.top))
            self.layers.append(layer)
            self.layer_names.append(lp.name)
            self.bottom_vecs.append(bottom)
            self.top_vecs.append(top)
            self.bottom_names.append(list(lp.bottom))
            self.top_names.append(list(lp.top))
        self.outputs = sorted(n for n in self.blobs if n not in consumed)
        self.layer_dict = collections.OrderedDict()
        for name, layer in zip(self.layer_names, self.layers):
            self.layer_dict.setdefault(name, layer)
        self._share_params()
        self._analyse_backward(force_backward)
        self._check_memory()
        self._release_after = self._last_uses()

    def _last_uses(self):
        """For the ``keep_blobs=False`` mode: layer index -> blobs whose last use is that layer.

        Blobs are tracked by identity (an in-place top is its bottom); inputs and outputs are never released,
        nor any blob of a layer with a loss weight.
        """
        keep = {id(self.blobs[n]) for n in self.inputs + self.outputs}
        last = {}
        for i, (bottom, top) in enumerate(zip(self.bottom_vecs, self.top_vecs)):
            for b in list(bottom) + list(top):
                last[id(b)] = (i, b)
        release = collections.defaultdict(list)
        for key, (i, blob) in last.items():
            if key not in keep:
                release[i].append(blob)
        return release

    def _check_memory(self):
        """Refuse a net whose blobs alone would not fit in the machine's memory (before allocating them)."""
        try:
            physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return
        unique = {id(b): b for b in self.blobs.values()}
        need = sum(b.count for b in unique.values()) * self.dtype.itemsize
        if self.backend == "cuda" and unique:
            from .backend import check_device_memory
            # data, and a diff for every blob a backward writes; parameters with their diffs
            diffs = sum(b.count for b in unique.values() if b.name in self.blob_need_backward)
            params = 2 * sum(b.count for b in self.learnable_params)
            largest = max(unique.values(), key=lambda b: b.count)
            lattices = {}
            for layer in self.layers:
                if hasattr(layer, "device_lattice_bytes"):
                    lattices.update(layer.device_lattice_bytes())
            check_device_memory((need // self.dtype.itemsize + diffs + params) * self.dtype.itemsize
                                + sum(lattices.values()),
                                "net '%s': blobs, parameters and lattices (largest blob '%s' %s)"
                                % (self.name, largest.name, largest.shape_string()))
        if need > physical:
            largest = max(unique.values(), key=lambda b: b.count)
            raise ShapeError("net '%s' needs %.1f GB for its blobs' data alone, more than the machine's %.1f GB "
                             "(largest: '%s' of shape %s)" % (self.name, need / 1e9, physical / 1e9,
                                                             largest.name, largest.shape_string()))

    def _share_params(self):
        """Share parameter blobs by ``ParamSpec.name``; collect learnable params with lr and decay."""
        self.params = collections.OrderedDict()
        self.learnable_params, self.params_lr, self.params_weight_decay = [], [], []
        self.param_names, self.param_owner_names = [], []
        owners = {}          # ParamSpec name -> (blob, lr_mult set?, spec, display name)
        for layer in self.layers:
            if not layer.blobs:
                continue
            for j in range(len(layer.blobs)):
                spec = layer.param_spec(j)
                display = "%s/%d" % (layer.name, j)
                if spec.name and spec.name in owners:
                    owner, owner_spec, owner_display = owners[spec.name]
                    blob = layer.blobs[j]
                    strict = spec.share_mode == "STRICT"
                    if (strict and owner.shape != blob.shape) or owner.count != blob.count:
                        raise ShapeError(
                            "%sshared parameter '%s' has shape %s here but %s in its owner %s (share_mode %s)"
                            % (layer.where("param"), spec.name, blob.shape_string(), owner.shape_string(),
                               owner_display, spec.share_mode))
                    if spec.has("lr_mult") and owner_spec.has("lr_mult") and spec.lr_mult != owner_spec.lr_mult:
                        raise NetError("%sshared parameter '%s' has lr_mult %g but %g in its owner %s"
                                       % (layer.where("param"), spec.name, spec.lr_mult, owner_spec.lr_mult,
                                          owner_display))
                    if owner.shape != blob.shape:
                        owner_view = owner
                        layer.blobs[j] = _ReshapedView(owner_view, blob.shape)
                    else:
                        layer.blobs[j] = owner
                    continue
                if spec.name:
                    owners[spec.name] = (layer.blobs[j], spec, display)
                layer.blobs[j].name = display
                self.learnable_params.append(layer.blobs[j])
                self.params_lr.append(float(spec.lr_mult))
                self.params_weight_decay.append(float(spec.decay_mult))
                self.param_names.append(display)
            self.params.setdefault(layer.name, layer.blobs)

    def _analyse_backward(self, force_backward):
        """Caffe's need-backward analysis (``Net::Init``), as its three passes."""
        self._needs_from_parameters()
        self._prune_layers_without_loss(force_backward)
        if force_backward:
            self._force_backward()
        self.blob_need_backward = {name for names, needs in zip(self.bottom_names, self.bottom_need_backward)
                                   for name, need in zip(names, needs) if need}
        if force_backward:
            self.blob_need_backward.update(self.inputs)

    def _propagate_down_rule(self, layer, needs):
        """``needs`` (one flag per bottom) masked by the layer's ``propagate_down`` list, when it gives one."""
        rule = layer.layer_param.propagate_down
        if not rule:
            return needs
        if len(rule) != len(needs):
            raise NetError("%spropagate_down must be given 0 times or once per bottom (%d bottoms)"
                           % (layer.where("propagate_down"), len(needs)))
        return [need and bool(p) for need, p in zip(needs, rule)]

    def _needs_from_parameters(self):
        """Pass 1, forward: a parameter needs a gradient iff its ``lr_mult != 0``; a bottom iff some earlier
        layer that needs a backward wrote it; a layer needs a backward iff a parameter or a bottom does, and then
        its tops need gradients."""
        needed = set()
        self.layer_need_backward, self.bottom_need_backward = [], []
        for layer, bottoms, tops in zip(self.layers, self.bottom_names, self.top_names):
            layer.param_propagate_down = [layer.param_spec(j).lr_mult != 0 for j in range(len(layer.blobs))]
            bottom_needs = [name in needed for name in bottoms]
            need = any(layer.param_propagate_down) or any(bottom_needs)
            self.layer_need_backward.append(need)
            self.bottom_need_backward.append(self._propagate_down_rule(layer, bottom_needs))
            if need:
                needed.update(tops)

    def _prune_layers_without_loss(self, force_backward):
        """Pass 2, backward from the losses: a layer none of whose tops reaches a loss needs no backward (kept
        with ``force_backward``)."""
        under_loss = set()
        for i in reversed(range(len(self.layers))):
            contributes = any(self.layers[i].loss_weights) or any(t in under_loss for t in self.top_names[i])
            if contributes:
                under_loss.update(self.bottom_names[i])
            elif not force_backward:
                self.layer_need_backward[i] = False
                self.bottom_need_backward[i] = [False] * len(self.bottom_names[i])

    def _force_backward(self):
        """Pass 3, ``force_backward: true``: every layer runs backward and every bottom its layer allows
        (:meth:`Layer.allow_force_backward`) gets a diff, within the layer's ``propagate_down`` rule."""
        for i, layer in enumerate(self.layers):
            self.layer_need_backward[i] = True
            allowed = [need or layer.allow_force_backward(b) for b, need in enumerate(self.bottom_need_backward[i])]
            self.bottom_need_backward[i] = self._propagate_down_rule(layer, allowed)
            layer.param_propagate_down = [True] * len(layer.blobs)

    # -- running -----------------------------------------------------------------------------------------------
    def reshape(self):
        """Re-run every layer's ``reshape`` (after an input changed shape)."""
        for layer, bottom, top in zip(self.layers, self.bottom_vecs, self.top_vecs):
            layer.reshape(bottom, top)
        self._check_memory()
        for layer, top in zip(self.layers, self.top_vecs):
            for t, w in zip(top, layer.loss_weights):
                if w:
                    t.diff[...] = w

    def _set_inputs(self, inputs):
        changed = False
        for name, value in inputs.items():
            if name not in self.blobs:
                raise NetError("net '%s' has no blob '%s' (inputs: %s)" % (self.name, name, ", ".join(self.inputs)))
            if name not in self.inputs:
                raise NetError("blob '%s' is not an input of net '%s' (inputs: %s)"
                               % (name, self.name, ", ".join(self.inputs)))
            blob = self.blobs[name]
            value = np.asarray(value)
            if value.dtype.kind not in "fiub":
                raise ShapeError("input '%s': expected a numeric array, got dtype %s" % (name, value.dtype))
            if value.ndim != blob.num_axes and blob.num_axes:
                raise ShapeError("input '%s': expected %d axes like %s, got shape %s"
                                 % (name, blob.num_axes, blob.shape_string(), "x".join(map(str, value.shape))))
            if value.shape != blob.shape:
                blob.reshape(value.shape)
                changed = True
            blob.data = value
        if changed:
            self.reshape()

    def forward(self, start=None, end=None, **inputs):
        """Set the named inputs, run forward, return ``{output name: data}``.

        Parameters
        ----------
        start, end : str, optional
            Names of the first and last layers to run (pycaffe's ``forward(start=, end=)``).
        **inputs : ndarray
            Input blob values; a new shape reshapes the net.
        """
        self._set_inputs(inputs)
        i0 = self.layer_names.index(start) if start else 0
        i1 = self.layer_names.index(end) if end else len(self.layers) - 1
        self.forward_from_to(i0, i1)
        names = self.outputs if end is None else self.top_names[i1]
        return {name: self.blobs[name].cpu_data() for name in names}

    def forward_from_to(self, start, end):
        """Run layers ``start..end`` (inclusive indices); return the summed loss."""
        loss = 0.0
        for i in range(start, end + 1):
            loss += self.layers[i].forward(self.bottom_vecs[i], self.top_vecs[i])
            if not self.keep_blobs:
                for blob in self._release_after.get(i, ()):
                    blob.release()
        return loss

    def forward_prefilled(self):
        """Forward with the inputs already in place; returns the total weighted loss."""
        return self.forward_from_to(0, len(self.layers) - 1)

    def backward(self, start=None, end=None, **diffs):
        """Backward from the diffs already in the output blobs, or from ``diffs``; return input diffs.

        Loss tops keep their loss weight as diff. Inputs receive a diff only when they need one (some layer
        with parameters or ``force_backward: true``); the others are returned as they are (zero).
        """
        if not self.keep_blobs:
            raise NetError("net '%s' was built with keep_blobs=False (inference only): its intermediate blobs "
                           "are freed during forward, so it cannot run backward" % self.name)
        for name, value in diffs.items():
            if name not in self.blobs:
                raise NetError("net '%s' has no blob '%s' (outputs: %s)" % (self.name, name, ", ".join(self.outputs)))
            blob = self.blobs[name]
            value = np.asarray(value)
            if value.shape != blob.shape:
                raise ShapeError("diff for '%s' has shape %s, the blob has shape %s"
                                 % (name, "x".join(map(str, value.shape)), "x".join(map(str, blob.shape))))
            blob.diff = value.copy()
        for layer, top in zip(self.layers, self.top_vecs):
            for t, w in zip(top, layer.loss_weights):
                if w and t.name not in diffs:
                    if self.backend == "cuda":          # set on the device: nothing crosses
                        from . import cuda_ops
                        cuda_ops.fill(t.mutable_gpu_diff(), w)
                    else:
                        t.diff[...] = w
        i0 = self.layer_names.index(start) if start else len(self.layers) - 1
        i1 = self.layer_names.index(end) if end else 0
        self.backward_from_to(i0, i1)
        return {name: self.blobs[name].cpu_diff() for name in self.inputs}

    def backward_from_to(self, start, end):
        for i in range(start, end - 1, -1):
            if self.layer_need_backward[i]:
                self.layers[i].backward(self.top_vecs[i], self.bottom_need_backward[i], self.bottom_vecs[i])

    def forward_backward(self):
        """One forward and one backward pass; returns the loss (the solver's inner step)."""
        loss = self.forward_prefilled()
        self.backward()
        return loss

    def clear_param_diffs(self):
        """Zero every learnable parameter's diff (on the device for the ``cuda`` backend: no copy)."""
        if self.backend == "cuda":
            from . import cuda_ops
            for blob in self.learnable_params:
                if type(blob) is Blob:
                    cuda_ops.fill(blob.mutable_gpu_diff(), 0)
                else:
                    blob.diff[...] = 0
            return
        for blob in self.learnable_params:
            blob.diff[...] = 0

    def share_with(self, other):
        """Share the learnable parameters of ``other`` (same layer names; test nets of a solver)."""
        for name, blobs in self.params.items():
            if name not in other.params:
                continue
            src = other.params[name]
            if len(src) != len(blobs):
                raise NetError("cannot share layer '%s': %d blobs here, %d in the other net"
                               % (name, len(blobs), len(src)))
            for j, (mine, theirs) in enumerate(zip(blobs, src)):
                if mine.shape != theirs.shape:
                    raise ShapeError("cannot share layer '%s' blob %d: shape %s here, %s in the other net"
                                     % (name, j, mine.shape_string(), theirs.shape_string()))
                mine.share_data(theirs)

    # -- weights -----------------------------------------------------------------------------------------------
    def copy_from(self, path):
        """Copy trained weights by layer name from a ``.caffemodel`` or HDF5 file; returns which layers were
        copied, ignored and left at their fillers (:func:`crfrnn_np.weights.copy_trained_layers`)."""
        from .weights import copy_trained_layers
        report = copy_trained_layers(self, path)
        self.params_to_device()
        return report

    def params_to_device(self):
        """On the ``cuda`` backend, copy every parameter blob to the device now (once, after the fillers or
        the weights wrote them on the host), so that a forward moves only its inputs and outputs. Nothing on
        the CPU backend."""
        if self.backend != "cuda":
            return
        for blobs in self.params.values():
            for blob in blobs:
                if type(blob) is Blob:
                    blob.gpu_data()

    def save(self, path, write_diff=False):
        """Write the weights: HDF5 when ``path`` ends in ``.h5``, else a binary ``.caffemodel``."""
        from .weights import save_weights
        save_weights(self, path, write_diff=write_diff)

    def to_proto(self, write_diff=False):
        """``NetParameter`` Message with every layer's definition and its blobs (Caffe's ``ToProto``)."""
        from .weights import net_to_proto
        return net_to_proto(self, write_diff=write_diff)

    def __repr__(self):
        return "<Net '%s': %d layers, %d blobs, inputs %s, outputs %s>" % (
            self.name, len(self.layers), len(self.blobs), self.inputs, self.outputs)


class _ReshapedView(Blob):
    """A PERMISSIVE shared parameter: the owner's arrays seen with this layer's shape."""

    def __init__(self, owner, shape):
        super().__init__(shape, owner.dtype, owner.name)
        self._owner = owner

    @property
    def data(self):
        return self._owner.data.reshape(self.shape)

    @data.setter
    def data(self, value):
        self._owner.data = np.asarray(value).reshape(self._owner.shape)

    @property
    def diff(self):
        return self._owner.diff.reshape(self.shape)

    @diff.setter
    def diff(self, value):
        self._owner.diff = np.asarray(value).reshape(self._owner.shape)
