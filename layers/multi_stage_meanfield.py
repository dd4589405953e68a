r"""MultiStageMeanfield: T mean-field iterations of a dense CRF as one layer (CRF-as-RNN, Zheng et al. 2015).

Bottoms: ``unary`` U (N, C, H, W), the FCN's class scores; ``Q0`` (N, C, H, W), the logits whose softmax is
the initial marginal; ``data`` (N, K >= 3, H, W), the mean-subtracted BGR image. Top: ``pred`` (N, C, H, W),
the un-normalised logits L_T after T iterations (spec crfasrnn.md §1.2).

One iteration (paper Algorithm 1; spec §2.1), with L_0 = Q0; each line is one step layer:

    P_t = Softmax(L_{t-1})                              Softmax                    layers/softmax.py
    S_t = norm_s ⊙ K_s P_t,   B_t = norm_b ⊙ K_b P_t    PermutohedralFilter x 2    layers/permutohedral_filter.py
    M_t = W_s S_t + W_b B_t                             Compatibility x 2, Eltwise layers/compatibility.py
    Φ_t = μ M_t                                         Compatibility (μ)          layers/compatibility.py
    L_t = U − Φ_t                                       UnaryAdd                   layers/unary_add.py

Parameters: ``blobs[0]`` = W_s, ``blobs[1]`` = W_b, ``blobs[2]`` = μ, each (1, 1, C, C), initialised to
W_s = w_s·I, W_b = w_b·I, μ = −I where the diagonals come from ``spatial_filter_weights_str`` /
``bilateral_filter_weights_str`` (C numbers), else ``spatial_filter_weight`` / ``bilateral_filter_weight``
when given, else the intended reference values 3 and 5 (spec §1.4; the ``.par`` files are not read).

Untied (``multi_stage_meanfield_param { untied: true }``, the paper's ablation): each iteration t has its own
W_s^t, W_b^t, μ^t, so ``blobs`` holds 3T blobs in iteration order, ``blobs[3(t−1) + k]`` for iteration t =
1..T and k = 0 (W_s), 1 (W_b), 2 (μ) (:func:`parameter_index`); each starts at the tied layer's initial
value. ``param { ... }`` specs: 3T of them apply blob by blob; exactly 3 apply by role to every iteration
(lr_mult and decay_mult; a ``name`` only to iteration 1's blob, the others are the layer's own). Only the
``STEPS`` engine runs it.

Backward (BPTT, spec §2.2): the steps' backwards in reverse order; ∂U = Σ_t ∂L_t (the unary fans out to T
UnaryAdds), ∂Q0 from the first softmax only, no gradient to the image (it only fixes the lattice
features), parameter diffs accumulated over iterations and images (``+=``, so ``iter_size`` accumulation
works, unlike the reference which zeroes first).

Engines (``multi_stage_meanfield_param { engine: ... }``, as Caffe's layers have engines)
--------------------------------------------------------------------------------------------
============  ===========================================================================  ===============
engine        what runs                                                                    backends
============  ===========================================================================  ===============
``STEPS``     the step-layer sub-net that ``crfrnn unroll`` prints (:func:`unrolled_layers`),  every backend
              run as a :class:`~crfrnn_np.Net` through each step layer's own ``forward`` and
              ``backward``: the definition, what students read and edit, what ``crfrnn
              trace`` records (:class:`StepsEngine`)
``FUSED``     the same maths rearranged into fused kernels, each tested against the        ``cpu`` and
              steps it replaces: on ``cpu`` :mod:`crfrnn_np.fused.meanfield`               ``cuda``
              (compatibility products on the lattice vertices, one pass per pixel per
              iteration), on ``cuda`` :mod:`crfrnn_np.fused.meanfield_cuda` (the lattice
              filters, then one pixel kernel for the normalisations, compatibilities,
              UnaryAdd and the next Softmax); any other backend or ``untied: true`` is an
              error
``DEFAULT``   ``FUSED`` on the ``cpu`` backend, ``STEPS`` everywhere else and when untied  every backend
              (on ``cuda`` DEFAULT stays ``STEPS`` until a GPU timing shows FUSED faster
              there: it launches fewer kernels and makes fewer passes over the (C, H*W)
              planes per iteration, but so far it has run only under the simulator)
============  ===========================================================================  ===============

Both engines keep per-iteration state for the backward in the TRAIN phase (or when :attr:`keep_iterations`
is set); in the TEST phase the forward keeps nothing, and a backward asked for afterwards
(``force_backward``) first runs the forward again, keeping. One lattice cache serves the layer (the net's
when it is in a net): the spatial lattice once per H×W, one bilateral lattice per image per forward,
shared by all 2T filters and the backward.
"""
import copy
import re

import numpy as np

from crfrnn_np.layer import Layer, register_layer
from crfrnn_np.proto import Message

from .compatibility import parse_diagonal
from .permutohedral_filter import LatticeCache

#: Initial diagonals of W_s and W_b when the prototxt gives none (the shipped ``spatial.par``/``bilateral.par``).
DEFAULT_SPATIAL_WEIGHT = 3.0
DEFAULT_BILATERAL_WEIGHT = 5.0

#: Names of the three parameter blobs (suffixes of the shared ``param { name }``).
PARAM_SUFFIXES = ("spatial_weight", "bilateral_weight", "compatibility")

#: Per-iteration blob roles, in the order the steps produce them (then ``logits``, L_t).
ROLES = ("prob", "spatial", "bilateral", "spatial_w", "bilateral_w", "message", "pairwise")


def _diagonal_string(mp, kind):
    """The initial diagonal of W_s (kind "spatial") or W_b ("bilateral") as a string."""
    text = getattr(mp, kind + "_filter_weights_str")
    if text.strip():
        return text.strip()
    if mp.has(kind + "_filter_weight"):
        return "%r" % float(getattr(mp, kind + "_filter_weight"))
    return "%r" % (DEFAULT_SPATIAL_WEIGHT if kind == "spatial" else DEFAULT_BILATERAL_WEIGHT)


def iteration_blob(layer_name, t, role):
    """Name of the blob of ``role`` (one of :data:`ROLES` or ``logits``) of iteration t (1-based)."""
    return "%s_iter%d_%s" % (layer_name, t, role)


def parameter_index(t, k, untied):
    """Index in ``blobs`` of parameter k (0 W_s, 1 W_b, 2 μ) of iteration t (1-based): k when tied,
    3(t−1) + k when untied."""
    return len(PARAM_SUFFIXES) * (t - 1) + k if untied else k


def blob_param_spec(layer_param, i):
    """The ``ParamSpec`` of parameter blob i of a MultiStageMeanfield layer (module docstring: 3T specs apply
    blob by blob; exactly 3 apply by role to every iteration of an untied layer, named only for iteration 1)."""
    params = layer_param.param
    if i < len(params):
        return params[i]
    if layer_param.multi_stage_meanfield_param.untied and len(params) == len(PARAM_SUFFIXES):
        spec = params[i % len(PARAM_SUFFIXES)].copy()
        spec.clear("name")
        return spec
    return Message("ParamSpec")


def _where(layer_param):
    where = layer_param.where("type") or layer_param.where()
    return "%slayer '%s' (MultiStageMeanfield): " % (where + ": " if where else "", layer_param.name)


def unrolled_layers(layer_param):
    """The T iterations of a MultiStageMeanfield layer as step-layer ``LayerParameter`` messages.

    Parameters
    ----------
    layer_param : Message (LayerParameter)
        A ``MultiStageMeanfield`` layer with bottoms (unary, Q0, data) and one top.

    Returns
    -------
    list of Message (LayerParameter)
        8·T layers: per iteration Softmax, PermutohedralFilter (SPATIAL), PermutohedralFilter (BILATERAL),
        Compatibility (W_s), Compatibility (W_b), Eltwise SUM, Compatibility (μ), UnaryAdd. The three
        Compatibility kinds share their matrix across iterations through ``param { name: "<layer>_spatial_weight"
        }`` (``_bilateral_weight``, ``_compatibility``), carrying the layer's lr/decay multipliers. The last
        UnaryAdd writes the layer's top; phase and include/exclude rules are copied to every step.
        With ``untied: true`` the Compatibility steps are not shared: each has its own blob, with the
        ParamSpec of the layer's blob :func:`parameter_index` (:func:`blob_param_spec`).

    Raises
    ------
    NetError
        If ``num_iterations < 2`` or the layer does not have 3 bottoms and 1 top.
    """
    from crfrnn_np.errors import NetError
    name = layer_param.name
    where = _where(layer_param)
    if len(layer_param.bottom) != 3 or len(layer_param.top) != 1:
        raise NetError("%sneeds 3 bottoms (unary, Q0, data) and 1 top, got %d and %d"
                       % (where, len(layer_param.bottom), len(layer_param.top)))
    mp = layer_param.multi_stage_meanfield_param
    T = int(mp.num_iterations)
    if T < 2:
        raise NetError("%snum_iterations must be at least 2 (as in the reference), got %d" % (where, T))
    unary, q0, data = layer_param.bottom
    untied = bool(mp.untied)
    diagonals = (_diagonal_string(mp, "spatial"), _diagonal_string(mp, "bilateral"), "-1")

    def step(t, kind, type_name, bottoms, top):
        lp = Message("LayerParameter", name="%s_iter%d_%s" % (name, t, kind), type=type_name,
                     bottom=list(bottoms), top=[top])
        for field in ("phase", "include", "exclude"):
            if layer_param.has(field):
                setattr(lp, field, copy.deepcopy(getattr(layer_param, field)))
        return lp

    def compatibility(t, kind, k, bottom, top):
        lp = step(t, kind, "Compatibility", [bottom], top)
        spec = blob_param_spec(layer_param, parameter_index(t, k, untied)).copy()
        if not untied:
            spec.name = "%s_%s" % (name, PARAM_SUFFIXES[k])
        lp.param = [spec]
        lp.mutable("compatibility_param").diagonal_str = diagonals[k]
        return lp

    layers = []
    previous = q0
    for t in range(1, T + 1):
        blob = {role: iteration_blob(name, t, role) for role in ROLES}
        logits = layer_param.top[0] if t == T else iteration_blob(name, t, "logits")
        layers.append(step(t, "softmax", "Softmax", [previous], blob["prob"]))
        for kind in ("spatial", "bilateral"):
            lp = step(t, kind, "PermutohedralFilter", [blob["prob"], data], blob[kind])
            pp = lp.mutable("permutohedral_param")
            pp.kernel = kind.upper()
            if kind == "spatial":
                pp.theta_gamma = float(mp.theta_gamma)
            else:
                pp.theta_alpha = float(mp.theta_alpha)
                pp.theta_beta = float(mp.theta_beta)
            layers.append(lp)
        layers.append(compatibility(t, "spatial_weight", 0, blob["spatial"], blob["spatial_w"]))
        layers.append(compatibility(t, "bilateral_weight", 1, blob["bilateral"], blob["bilateral_w"]))
        lp = step(t, "message", "Eltwise", [blob["spatial_w"], blob["bilateral_w"]], blob["message"])
        lp.mutable("eltwise_param").operation = "SUM"
        layers.append(lp)
        layers.append(compatibility(t, "compatibility", 2, blob["message"], blob["pairwise"]))
        layers.append(step(t, "unary_add", "UnaryAdd", [unary, blob["pairwise"]], logits))
        previous = logits
    return layers


def steps_net_param(layer_param, shapes):
    """The NetParameter of the STEPS engine's sub-net: an Input layer for the three bottoms, then
    :func:`unrolled_layers`, with ``force_backward`` (the sub-net has no loss of its own).

    The steps' include/exclude rules are dropped (the layer itself was already selected by the outer net's
    state) and their phase is the layer's. Bottom and top names must be four distinct names.

    Parameters
    ----------
    layer_param : Message (LayerParameter)
    shapes : sequence of 3 tuples
        Shapes of unary, Q0 and data.
    """
    net = Message("NetParameter", name="%s_steps" % layer_param.name, force_backward=True)
    source = Message("LayerParameter", name="%s_input" % layer_param.name, type="Input",
                     top=list(layer_param.bottom))
    source.mutable("input_param").shape = [Message("BlobShape", dim=[int(d) for d in s]) for s in shapes]
    steps = unrolled_layers(layer_param)
    for lp in steps:
        lp.clear("include")
        lp.clear("exclude")
    net.layer = [source] + steps
    return net


def _distinct_names(layer_param):
    """``layer_param`` itself when its three bottoms and its top have four distinct names, else a copy with
    ``<layer>_unary``, ``<layer>_Q0``, ``<layer>_data`` and ``<layer>_pred`` (the sub-net needs one blob per
    role; a layer made outside a net may name one blob twice)."""
    names = list(layer_param.bottom) + list(layer_param.top)
    if len(set(names)) == len(names):
        return layer_param
    renamed = layer_param.copy()
    renamed.bottom = ["%s_%s" % (layer_param.name, role) for role in ("unary", "Q0", "data")]
    renamed.top = ["%s_pred" % layer_param.name]
    return renamed


def weight_aliases(layers):
    """Extra names under which weights files may hold a mean-field layer's parameters.

    A caffemodel saved from a MultiStageMeanfield net holds layer ``X`` with the three blobs (W_s, W_b, μ),
    or 3T when untied; one saved from its unrolled net (``crfrnn unroll``) holds the Compatibility steps
    ``X_iter<t>_spatial_weight``, ``X_iter<t>_bilateral_weight`` and ``X_iter<t>_compatibility`` with one
    blob each (the same three for every t when tied, their own when untied). Either file loads into either
    net through these aliases.

    Parameters
    ----------
    layers : sequence of Layer
        A net's layers.

    Returns
    -------
    dict
        name -> ``(description, [Blob, ...])``: for every mean-field layer X its per-step names (one blob
        each); for every unrolled layer X whose three shared parameters are all present, the name X (three
        blobs; 3T for an untied one: Compatibility steps ``X_iter<t>_<suffix>`` that do not share
        ``X_<suffix>``, complete for t = 1..T). Names of real layers are left out: a real layer always wins.
    """
    real = {layer.name for layer in layers}
    aliases = {}
    unrolled = {}                       # X -> {suffix index: blob}
    untied = {}                         # X -> {(t, suffix index): blob}
    step_name = re.compile(r"^(.+)_iter(\d+)_(%s)$" % "|".join(PARAM_SUFFIXES))
    for layer in layers:
        if layer.type == "MultiStageMeanfield":
            for t in range(1, layer.num_iterations + 1):
                for k, suffix in enumerate(PARAM_SUFFIXES):
                    i = parameter_index(t, k, layer.untied)
                    aliases["%s_iter%d_%s" % (layer.name, t, suffix)] = (
                        "parameter %d of MultiStageMeanfield '%s'" % (i, layer.name), [layer.blobs[i]])
        elif layer.type == "Compatibility" and layer.layer_param.param:
            name = layer.layer_param.param[0].name
            match = step_name.match(layer.name)
            for k, suffix in enumerate(PARAM_SUFFIXES):
                if name.endswith("_" + suffix):
                    unrolled.setdefault(name[:-len(suffix) - 1], {})[k] = layer.blobs[0]
            if match and name != "%s_%s" % (match.group(1), match.group(3)):
                key = (int(match.group(2)), PARAM_SUFFIXES.index(match.group(3)))
                untied.setdefault(match.group(1), {})[key] = layer.blobs[0]
    for name, blobs in unrolled.items():
        if len(blobs) == len(PARAM_SUFFIXES):
            aliases[name] = ("the unrolled MultiStageMeanfield '%s' (its shared parameters)" % name,
                             [blobs[k] for k in range(len(PARAM_SUFFIXES))])
    for name, blobs in untied.items():
        T = len(blobs) // len(PARAM_SUFFIXES)
        wanted = [(t, k) for t in range(1, T + 1) for k in range(len(PARAM_SUFFIXES))]
        if T >= 2 and set(blobs) == set(wanted):
            aliases[name] = ("the unrolled untied MultiStageMeanfield '%s' (%d parameters)" % (name, len(wanted)),
                             [blobs[key] for key in wanted])
    return {name: target for name, target in aliases.items() if name not in real}


def resolve_engine(layer_param, backend):
    """The engine that runs a MultiStageMeanfield layer on ``backend``: ``"STEPS"`` or ``"FUSED"``.

    Raises
    ------
    NetError
        ``FUSED`` asked for on a backend other than ``"cpu"`` and ``"cuda"`` (the backends with fused
        kernels: :mod:`crfrnn_np.fused.meanfield`, :mod:`crfrnn_np.fused.meanfield_cuda`), or with
        ``untied: true`` (the fused kernels take one W_s, W_b, μ).
    """
    from crfrnn_np.errors import NetError
    mp = layer_param.multi_stage_meanfield_param
    asked = mp.engine
    if asked == "FUSED" and mp.untied:
        raise NetError("%sengine FUSED does not run untied: true (one W_s, W_b, mu per iteration); use engine "
                       "STEPS or DEFAULT" % _where(layer_param))
    if asked == "FUSED" and backend not in ("cpu", "cuda"):
        raise NetError("%sengine FUSED runs on the cpu and cuda backends only (this net's backend is '%s'); use "
                       "engine STEPS or DEFAULT" % (_where(layer_param), backend))
    if asked == "DEFAULT":
        return "FUSED" if backend == "cpu" and not mp.untied else "STEPS"
    return asked


class StepsEngine:
    """MultiStageMeanfield's ``STEPS`` engine: the step-layer sub-net of ``crfrnn unroll``, run as a Net.

    The parent's bottoms are the sub-net's inputs (the same arrays, no copy), the parent's three parameter
    blobs are the sub-net's Compatibility blobs (shared by every iteration; untied, the parent's 3T blobs, one
    per Compatibility step, :func:`parameter_index`), and the parent's lattice cache
    is the sub-net's. Fan-out is the sub-net's business: it inserts Split layers (unary -> T UnaryAdds,
    image -> 2T filters, each P_t -> two filters) whose backward sums the diffs, as in any Caffe net.

    Attributes
    ----------
    net : Net
        The sub-net. Its blobs are named by :func:`iteration_blob` (``inference1_iter3_spatial``, ...);
        after a forward that kept them every intermediate of every iteration is there, data and diff.
    layer_param : Message
        The layer's definition as the sub-net names it (see :func:`_distinct_names`).
    """

    def __init__(self, layer, bottom):
        from crfrnn_np.net import Net
        self.layer = layer
        self.layer_param = _distinct_names(layer.layer_param)
        self.net = Net(steps_net_param(self.layer_param, [b.shape for b in bottom]), phase=layer.phase,
                       dtype=layer.dtype, backend=layer.backend, lattice_cache=layer.cache)
        self.inputs = [self.net.blobs[name] for name in self.layer_param.bottom]
        self.output = self.net.blobs[self.layer_param.top[0]]
        # each Compatibility step is named <layer>_iter<t>_<suffix> (unrolled_layers): its parent blob index
        prefix = "%s_iter" % self.layer_param.name
        self.compatibility = []
        for step in self.net.layers:
            if step.type == "Compatibility":
                t, suffix = step.name[len(prefix):].split("_", 1)
                self.compatibility.append(
                    (step, parameter_index(int(t), PARAM_SUFFIXES.index(suffix), layer.untied)))
        self.kept = False

    def share_params(self):
        """Hand the parent's current parameter blobs and their propagate-down flags to every Compatibility."""
        for step, k in self.compatibility:
            step.blobs = [self.layer.blobs[k]]
            step.param_propagate_down = [self.layer.param_propagate_down[k]]

    def reshape(self, bottom):
        for blob, b in zip(self.inputs, bottom):
            blob.reshape(b.shape)
        self.net.reshape()
        self.kept = False

    def release(self):
        """Drop every array of the sub-net (the inputs' data are the parent's and stay alive there); on the
        device they are kept for the next forward (allocated once per shape)."""
        if self.layer.backend != "cuda":
            for blob in self.net.blobs.values():
                blob.release()
        self.kept = False

    def forward(self, bottom, top, keep):
        self.share_params()
        for blob, b in zip(self.inputs, bottom):
            blob.share_data(b)
        device = self.layer.backend == "cuda"
        # False: each intermediate is freed after its last reader; on the device they are kept, so that a
        # forward allocates nothing after the first
        self.net.keep_blobs = keep or device
        with self.layer.cache.pinned():            # the image is hashed once per forward, not by all 2T filters
            self.net.forward_prefilled()
        if device:
            from crfrnn_np import cuda_ops
            cuda_ops.copy(self.output.gpu_data(), top[0].mutable_gpu_data())
        else:
            top[0].data[...] = self.output.data
        self.kept = keep

    def backward(self, top, propagate_down, bottom):
        if not self.kept:
            self.forward(bottom, top, True)
        self.share_params()
        device = self.layer.backend == "cuda"
        if device:
            from crfrnn_np import cuda_ops
            cuda_ops.copy(top[0].gpu_diff(), self.output.mutable_gpu_diff())
        else:
            self.output.diff = top[0].diff
        self.net.backward_from_to(len(self.net.layers) - 1, 0)
        for flag, blob, b in zip(propagate_down[:2], self.inputs, bottom):
            if flag and device:
                cuda_ops.copy(blob.gpu_diff(), b.mutable_gpu_diff())
            elif flag:
                b.diff[...] = blob.diff
        if not self.layer.keep_iterations:
            self.release()


@register_layer("MultiStageMeanfield")
class MultiStageMeanfieldLayer(Layer):
    """CRF-as-RNN mean-field inference; see the module docstring for the maths and the engines.

    Attributes
    ----------
    num_iterations : int
        T.
    untied : bool
        Each iteration has its own W_s, W_b, μ (3T blobs, :func:`parameter_index`).
    engine : {"STEPS", "FUSED"}
        The engine that runs (``DEFAULT`` resolved for the backend).
    keep_iterations : bool
        Keep every iteration's state during forward for a backward (TRAIN phase by default; ``crfrnn
        trace`` sets it to read every intermediate).
    cache : LatticeCache
        The lattices: the net's cache, or the layer's own when it is made outside a net.
    steps_engine : StepsEngine or None
        The STEPS engine (its sub-net ``steps_net``, the sub-net's ``inputs`` and ``output`` blobs), None for
        FUSED.
    steps_net : Net or None
        The STEPS engine's sub-net.
    """

    exact_num_bottom = 3
    exact_num_top = 1
    no_gradient_bottoms = {2: "the image only fixes the lattice features, which are constants"}

    def layer_setup(self, bottom, top):
        unrolled_layers(self.layer_param)        # checks the bottoms, the top and T (whichever engine runs)
        mp = self.layer_param.multi_stage_meanfield_param
        self.num_iterations = int(mp.num_iterations)
        self.untied = bool(mp.untied)
        self.engine = resolve_engine(self.layer_param, self.backend)
        self.keep_iterations = self.phase == "TRAIN"
        self.cache = self.lattice_cache or LatticeCache(self.backend)
        if not self.blobs:
            c = bottom[0].shape[1] if bottom[0].num_axes == 4 else 0
            diagonals = (_diagonal_string(mp, "spatial"), _diagonal_string(mp, "bilateral"), "-1")
            for _ in range(self.num_iterations if self.untied else 1):
                for text in diagonals:
                    blob = self.make_blob((1, 1, c, c))
                    blob.data[0, 0] = np.diag(parse_diagonal(text, c, self.where("multi_stage_meanfield_param")))
                    self.blobs.append(blob)
        self.param_propagate_down = [True] * len(self.blobs)
        if self.engine == "STEPS":
            self._engine = StepsEngine(self, bottom)
        elif self.backend == "cuda":
            from crfrnn_np.fused.meanfield_cuda import FusedCudaEngine
            self._engine = FusedCudaEngine(self)
        else:
            from crfrnn_np.fused.meanfield import FusedEngine
            self._engine = FusedEngine(self)

    def param_spec(self, i):
        return blob_param_spec(self.layer_param, i)

    def iteration_params(self, t):
        """``[W_s, W_b, μ]`` (Blobs (1, 1, C, C)) that iteration t (1-based) uses; the same three for every t
        when tied."""
        return [self.blobs[parameter_index(t, k, self.untied)] for k in range(len(PARAM_SUFFIXES))]

    @property
    def steps_engine(self):
        return self._engine if self.engine == "STEPS" else None

    @property
    def steps_net(self):
        return self._engine.net if self.engine == "STEPS" else None

    def reshape(self, bottom, top):
        unary, q0, data = bottom
        if unary.num_axes != 4 or q0.shape != unary.shape:
            raise self.shape_error("unary '%s' %s and Q0 '%s' %s must be equal N x C x H x W shapes"
                                   % (unary.name, unary.shape_string(), q0.name, q0.shape_string()))
        if data.num_axes != 4 or data.shape[0] != unary.shape[0] or data.shape[2:] != unary.shape[2:] \
                or data.shape[1] < 3:
            raise self.shape_error("image '%s' %s must be N x (>=3) x H x W like unary '%s' %s"
                                   % (data.name, data.shape_string(), unary.name, unary.shape_string()))
        c = unary.shape[1]
        for i, blob in enumerate(self.blobs):
            if blob.shape != (1, 1, c, c):
                raise self.shape_error("parameter %d has shape %s, expected 1 1 %d %d for %d classes"
                                       % (i, blob.shape_string(), c, c, c))
        self._engine.reshape(bottom)
        top[0].reshape(unary.shape)

    # Both engines dispatch to their backend themselves (the step layers have their own forward_gpu), so one
    # forward and one backward serve every backend.
    def forward_cpu(self, bottom, top):
        if bottom[0].count:
            self._engine.forward(bottom, top, self.keep_iterations)

    def backward_cpu(self, top, propagate_down, bottom):
        if bottom[0].count:
            self._engine.backward(top, propagate_down, bottom)
        if len(propagate_down) > 2 and propagate_down[2]:
            if self.backend == "cuda":
                from crfrnn_np import cuda_ops
                cuda_ops.fill(bottom[2].mutable_gpu_diff(), 0)
            else:
                bottom[2].diff[...] = 0
