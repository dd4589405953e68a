r"""MultiStageMeanfield: T mean-field iterations of a dense CRF as one layer (CRF-as-RNN, Zheng et al. 2015).

Bottoms: ``unary`` U (N, C, H, W), the FCN's class scores; ``Q0`` (N, C, H, W), the logits whose softmax is
the initial marginal; ``data`` (N, K >= 3, H, W), the mean-subtracted BGR image. Top: ``pred`` (N, C, H, W),
the un-normalised logits L_T after T iterations (spec crfasrnn.md §1.2).

One iteration (paper Algorithm 1; spec §2.1), with L_0 = Q0::

    P_t = Softmax(L_{t-1})                              Softmax
    S_t = norm_s ⊙ K_s P_t,   B_t = norm_b ⊙ K_b P_t    PermutohedralFilter x 2 (spatial, bilateral)
    M_t = W_s S_t + W_b B_t                             Compatibility x 2 (W_s, W_b), Eltwise SUM
    Φ_t = μ M_t                                         Compatibility (μ)
    L_t = U − Φ_t                                       UnaryAdd

Parameters: ``blobs[0]`` = W_s, ``blobs[1]`` = W_b, ``blobs[2]`` = μ, each (1, 1, C, C), initialised to
W_s = w_s·I, W_b = w_b·I, μ = −I where the diagonals come from ``spatial_filter_weights_str`` /
``bilateral_filter_weights_str`` (C numbers), else ``spatial_filter_weight`` / ``bilateral_filter_weight``
when given, else the intended reference values 3 and 5 (spec §1.4; the ``.par`` files are not read).

One source of truth
-------------------
The layer is *built from* the step layers: :func:`unrolled_layers` writes the T iterations as
``LayerParameter`` messages (what ``crfrnn unroll`` prints), and this layer instantiates exactly those
messages, runs them in order, and hands every Compatibility its shared parent blob — the same sharing
that ``param { name: ... }`` gives the unrolled net. The fused layer adds only the plumbing a Net would
do: fan-out sums (the unary feeds T UnaryAdds, each P_t feeds two filters) and memory management.

Two ways to run it
------------------
* **Step layers** (this module): the composition above, used whenever the lattices are not ``"cpu"``
  ones (the ``cuda`` and ``reference`` backends). This is the readable definition.
* **Fused CPU kernels** (:mod:`.meanfield_fused`), used on the ``"cpu"`` backend, forward and backward,
  in both phases: the same maths rearranged (compatibility products on the lattice vertices, or folded
  into the pixel pass when diagonal; one pass per pixel per iteration for both slices, the unary and the
  softmax), so that a 500 x 500 x 21, T = 10 forward costs about half of pydensecrf's. The tests hold it
  to the unrolled step-layer net in float64 (1e-12 forward, 1e-10 diffs) and to finite differences.

Backward (BPTT, spec §2.2): the step layers' backwards in reverse order; ∂U = Σ_t ∂L_t (fan-out sum),
∂Q0 from the first softmax only, no gradient to the image, parameter diffs accumulated over iterations
and images (``+=``, so ``iter_size`` accumulation works, unlike the reference which zeroes first).

Speed of the step-layer path: the three steps Compatibility (W_s), Compatibility (W_b) and Eltwise SUM of an iteration run as one
product, ``M_t = [W_s W_b] · [S_t; B_t]`` (:func:`compatibility.apply_compatibility`, the Compatibility
layer's own per-image GEMM, with the block form of the same sum): the two filters write S_t and B_t into
the two halves of one (N, 2C, H, W) array, so the product reads them in place and ``spatial_w`` /
``bilateral_w`` are never materialised. The backward of the three is likewise one product each way,
``∂[S_t; B_t] = [W_s W_b]ᵀ ∂M_t`` and ``∂[W_s W_b] += ∂M_t [S_t; B_t]ᵀ``
(:func:`compatibility.accumulate_weight_diff`). A blob read by two steps (the unary, each P_t) gets the
second reader's diff in a reused scratch array, then added. The image is hashed once per forward
(:meth:`LatticeCache.pinned`), not by each of the 2T filters. The forward's products (the message and
Φ_t = μ M_t) run in :func:`compatibility_product`, a numba loop, not a BLAS GEMM: OpenBLAS's threads
busy-wait after every GEMM and would take the cores from the lattice filters that follow. The lean
forward also folds each UnaryAdd into the product before it (``L_t = U − μ M_t`` in one pass).

Memory: one lattice cache per layer (the spatial lattice per H×W, one bilateral lattice per image per
forward, shared by all 2T filter calls and the backward). In TEST phase (``keep_buffers`` False) the
forward keeps no per-iteration blobs (step layers: every iteration reuses three C×H×W buffers, P_t and
the stacked S_t, B_t; fused: one (H·W, C) marginal array and two vertex buffers per lattice) and writes
its logits into the top; a backward requested afterwards (``force_backward``) first re-runs the forward
keeping them.
"""
import copy

import numba
import numpy as np

from crfrnn_np.blob import Blob
from crfrnn_np.layer import Layer, create_layer, register_layer
from crfrnn_np.proto import Message

from .compatibility import accumulate_weight_diff, apply_compatibility
from .meanfield_fused import backward_image, forward_image
from .permutohedral_filter import LatticeCache

#: Initial diagonals of W_s and W_b when the prototxt gives none (the shipped ``spatial.par``/``bilateral.par``).
DEFAULT_SPATIAL_WEIGHT = 3.0
DEFAULT_BILATERAL_WEIGHT = 5.0

#: Per-iteration blob roles, in the order they are produced, with the buffer each uses in a lean forward:
#: "prob" (P_t), "spatial" and "bilateral" (the two halves of one stacked (N, 2C, H, W) array), "prob" again
#: for the message (P_t is dead once both filters have read it) and "spatial" for Φ_t (S_t is dead once
#: the message is formed). ``spatial_w`` and ``bilateral_w`` are never written: the stacked product forms
#: the message directly (module docstring, "Speed").
_ROLES = ("prob", "spatial", "bilateral", "spatial_w", "bilateral_w", "message", "pairwise")
_LEAN_BUFFER = {"prob": "prob", "spatial": "spatial", "bilateral": "bilateral", "spatial_w": "prob",
                "bilateral_w": "prob", "message": "prob", "pairwise": "spatial"}
#: Pixels per work item of :func:`_plane_product`.
PRODUCT_BLOCK = 512


@numba.njit(cache=True, parallel=True)
def _plane_product(weight, x, base, out):
    """``out = weight · x`` (``base − weight · x`` when ``base`` (P, M) is not empty) for weight (P, Q),
    x (Q, M) and out (P, M), parallel over blocks of columns.
    Within a block, three output rows at a time are summed over q in order in local runs (each run of x
    is loaded once for the three)."""
    p_rows, q_rows = weight.shape
    m = x.shape[1]
    for b in numba.prange((m + PRODUCT_BLOCK - 1) // PRODUCT_BLOCK):
        lo = b * PRODUCT_BLOCK
        count = min(m, lo + PRODUCT_BLOCK) - lo
        acc0 = np.empty(PRODUCT_BLOCK, out.dtype)
        acc1 = np.empty(PRODUCT_BLOCK, out.dtype)
        acc2 = np.empty(PRODUCT_BLOCK, out.dtype)
        p = 0
        while p < p_rows:
            rows = min(3, p_rows - p)
            row = x[0, lo:lo + count]
            w0 = weight[p, 0]
            w1 = weight[p + 1, 0] if rows > 1 else w0
            w2 = weight[p + 2, 0] if rows > 2 else w0
            for i in range(count):
                r = row[i]
                acc0[i] = w0 * r
                acc1[i] = w1 * r
                acc2[i] = w2 * r
            for q in range(1, q_rows):
                row = x[q, lo:lo + count]
                w0 = weight[p, q]
                w1 = weight[p + 1, q] if rows > 1 else w0
                w2 = weight[p + 2, q] if rows > 2 else w0
                for i in range(count):
                    r = row[i]
                    acc0[i] += w0 * r
                    acc1[i] += w1 * r
                    acc2[i] += w2 * r
            for j, acc in enumerate((acc0, acc1, acc2)):
                if j < rows:
                    dest = out[p + j, lo:lo + count]
                    if base.shape[0] > 0:
                        src = base[p + j, lo:lo + count]
                        for i in range(count):
                            dest[i] = src[i] - acc[i]
                    else:
                        for i in range(count):
                            dest[i] = acc[i]
            p += rows


def compatibility_product(weight, bottom, top, base=None):
    """``top[n] = weight · bottom[n]`` (``base[n] − weight · bottom[n]`` with ``base``) per image, like
    :func:`compatibility.apply_compatibility`, but in a numba loop on the lattice's thread pool rather
    than a BLAS GEMM: the forward then never wakes OpenBLAS's threads, whose busy-waiting after each GEMM
    would take the cores from the lattice filters that follow (measured on 2 cores with 2 BLAS threads:
    the 500x500x21, T = 10 forward took 2.07 s with the GEMMs, 1.56 s with this loop).

    Parameters
    ----------
    weight : ndarray, (C', C)
    bottom : ndarray, (N, C, H, W), C-contiguous per image
    top : ndarray, (N, C', H, W), C-contiguous per image, not overlapping ``bottom``
    base : ndarray, (N, C', H, W), optional
        C-contiguous per image (the unary U: ``L_t = U − μ M_t`` in one pass, bit for bit the Compatibility
        step's Φ_t then the UnaryAdd step's subtraction).
    """
    n, c = bottom.shape[:2]
    pixels = int(np.prod(bottom.shape[2:], dtype=np.int64))
    weight = np.ascontiguousarray(weight, dtype=top.dtype)
    rows = weight.shape[0]
    none = np.empty((0, 0), top.dtype)
    for i in range(n):
        if not (top[i].flags.c_contiguous and bottom[i].flags.c_contiguous
                and (base is None or base[i].flags.c_contiguous)):
            raise ValueError("compatibility_product: image %d is not C-contiguous" % i)
        _plane_product(weight, bottom[i].reshape(c, pixels),
                       none if base is None else base[i].reshape(rows, pixels), top[i].reshape(rows, pixels))


#: Names of the three parameter blobs (suffixes of the shared ``param { name }``).
PARAM_SUFFIXES = ("spatial_weight", "bilateral_weight", "compatibility")


def _diagonal_string(mp, kind):
    """The initial diagonal of W_s (kind "spatial") or W_b ("bilateral") as a string."""
    text = getattr(mp, kind + "_filter_weights_str")
    if text.strip():
        return text.strip()
    if mp.has(kind + "_filter_weight"):
        return "%r" % float(getattr(mp, kind + "_filter_weight"))
    return "%r" % (DEFAULT_SPATIAL_WEIGHT if kind == "spatial" else DEFAULT_BILATERAL_WEIGHT)


def iteration_blob(layer_name, t, role):
    """Name of the blob of ``role`` (one of ``prob, spatial, ..., pairwise, logits``) of iteration t (1-based)."""
    return "%s_iter%d_%s" % (layer_name, t, role)


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

    Raises
    ------
    NetError
        If ``num_iterations < 2`` or the layer does not have 3 bottoms and 1 top.
    """
    from crfrnn_np.errors import NetError
    name = layer_param.name
    where = layer_param.where("type") or layer_param.where()
    where = "%slayer '%s' (MultiStageMeanfield): " % (where + ": " if where else "", name)
    if len(layer_param.bottom) != 3 or len(layer_param.top) != 1:
        raise NetError("%sneeds 3 bottoms (unary, Q0, data) and 1 top, got %d and %d"
                       % (where, len(layer_param.bottom), len(layer_param.top)))
    mp = layer_param.multi_stage_meanfield_param
    T = int(mp.num_iterations)
    if T < 2:
        raise NetError("%snum_iterations must be at least 2 (as in the reference), got %d" % (where, T))
    unary, q0, data = layer_param.bottom
    diagonals = (_diagonal_string(mp, "spatial"), _diagonal_string(mp, "bilateral"), "-1")

    def step(t, kind, type_name, bottoms, top):
        lp = Message("LayerParameter", name="%s_iter%d_%s" % (name, t, kind), type=type_name,
                     bottom=list(bottoms), top=[top])
        for field in ("phase", "include", "exclude"):
            if layer_param.has(field):
                setattr(lp, field, copy.deepcopy(getattr(layer_param, field)))
        return lp

    def compatibility(t, kind, index, bottom, top):
        lp = step(t, kind, "Compatibility", [bottom], top)
        spec = layer_param.param[index].copy() if index < len(layer_param.param) else Message("ParamSpec")
        spec.name = "%s_%s" % (name, PARAM_SUFFIXES[index])
        lp.param = [spec]
        lp.mutable("compatibility_param").diagonal_str = diagonals[index]
        return lp

    layers = []
    previous = q0
    for t in range(1, T + 1):
        blob = {role: iteration_blob(name, t, role) for role in _ROLES}
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


def weight_aliases(layers):
    """Extra names under which weights files may hold a mean-field layer's parameters.

    A caffemodel saved from a fused net holds layer ``X`` with the three blobs (W_s, W_b, μ); one saved
    from its unrolled net (``crfrnn unroll``) holds the Compatibility steps ``X_iter<t>_spatial_weight``,
    ``X_iter<t>_bilateral_weight`` and ``X_iter<t>_compatibility`` with one blob each. Either file loads
    into either net through these aliases.

    Parameters
    ----------
    layers : sequence of Layer
        A net's layers.

    Returns
    -------
    dict
        name -> ``(description, [Blob, ...])``: for every fused layer X its per-step names (one blob each);
        for every unrolled layer X whose three shared parameters are all present, the name X (three blobs).
        Names of real layers are left out: a real layer always wins.
    """
    real = {layer.name for layer in layers}
    aliases = {}
    unrolled = {}                       # X -> {suffix index: blob}
    for layer in layers:
        if layer.type == "MultiStageMeanfield":
            for t in range(1, layer.num_iterations + 1):
                for k, suffix in enumerate(PARAM_SUFFIXES):
                    aliases["%s_iter%d_%s" % (layer.name, t, suffix)] = (
                        "parameter %d of MultiStageMeanfield '%s'" % (k, layer.name), [layer.blobs[k]])
        elif layer.type == "Compatibility" and layer.layer_param.param:
            name = layer.layer_param.param[0].name
            for k, suffix in enumerate(PARAM_SUFFIXES):
                if name.endswith("_" + suffix):
                    unrolled.setdefault(name[:-len(suffix) - 1], {})[k] = layer.blobs[0]
    for name, blobs in unrolled.items():
        if len(blobs) == len(PARAM_SUFFIXES):
            aliases[name] = ("the unrolled MultiStageMeanfield '%s' (its shared parameters)" % name,
                             [blobs[k] for k in range(len(PARAM_SUFFIXES))])
    return {name: target for name, target in aliases.items() if name not in real}


@register_layer("MultiStageMeanfield")
class MultiStageMeanfieldLayer(Layer):
    """CRF-as-RNN mean-field inference, composed of the step layers; see the module docstring.

    Attributes
    ----------
    num_iterations : int
        T.
    keep_buffers : bool
        Keep every iteration's blobs during forward (TRAIN phase); otherwise a lean forward.
    cache : LatticeCache
        This layer's lattices.
    steps : list of Layer
        The 8·T step layers, in forward order.
    """

    exact_num_bottom = 3
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        self.step_params = unrolled_layers(self.layer_param)
        self.num_iterations = int(self.layer_param.multi_stage_meanfield_param.num_iterations)
        self.keep_buffers = self.phase == "TRAIN"
        self.cache = LatticeCache(self.backend)
        self.steps = []
        for lp in self.step_params:
            layer = create_layer(lp, phase=self.phase, dtype=self.dtype, backend=self.backend)
            if layer.type == "PermutohedralFilter":
                layer.cache = self.cache
            self.steps.append(layer)
        self._stored_forward = False
        self._records = []
        self._build_plans(bottom, top)
        owners = {}
        for layer, (bottoms, tops) in zip(self.steps, self._plans["full"]):
            shared = owners.get(layer.layer_param.param[0].name) if layer.type == "Compatibility" else None
            if shared is not None:
                layer.blobs = [shared]
                layer.param_propagate_down = [True]
            layer.setup(bottoms, tops)
            if layer.type == "Compatibility" and shared is None:
                owners[layer.layer_param.param[0].name] = layer.blobs[0]
        if not self.blobs:
            self.blobs = [owners["%s_%s" % (self.name, s)] for s in PARAM_SUFFIXES]
        self.param_propagate_down = [True, True, True]
        self._release()

    # -- plumbing: the blobs each step reads and writes ------------------------------------------------------
    def _build_plans(self, bottom, top):
        """Blob lists per step for the "full" (one blob per name) and "lean" (three reused buffers) forwards."""
        unary, q0, data = self.layer_param.bottom
        outer = {unary: bottom[0], q0: bottom[1], data: bottom[2], self.layer_param.top[0]: top[0]}
        full = dict(outer)
        lean_buffers = {role: Blob((), self.dtype, "%s_%s_buffer" % (self.name, role))
                        for role in ("prob", "spatial", "bilateral")}
        lean = dict(outer)
        pairs = {"full": [], "lean": [(lean_buffers["spatial"], lean_buffers["bilateral"])]}
        for t in range(1, self.num_iterations + 1):
            for role in _ROLES + ("logits",):
                name = iteration_blob(self.name, t, role)
                full[name] = Blob((), self.dtype, name)
                lean[name] = top[0] if role == "logits" else lean_buffers[_LEAN_BUFFER[role]]
            pairs["full"].append((full[iteration_blob(self.name, t, "spatial")],
                                  full[iteration_blob(self.name, t, "bilateral")]))
        self._pairs = pairs
        self._stacks = {}
        self._stack_keys = {}
        # the steps Compatibility (W_s), Compatibility (W_b), Eltwise SUM of each iteration: run as one product
        types = [lp.type for lp in self.step_params]
        self._message_steps = [k for k in range(len(types) - 2)
                               if types[k:k + 3] == ["Compatibility", "Compatibility", "Eltwise"]]
        self._plans = {}
        for mode, table in (("full", full), ("lean", lean)):
            self._plans[mode] = [([table[b] for b in lp.bottom], [table[t] for t in lp.top])
                                 for lp in self.step_params]
        self._full_table = full
        self._lean_buffers = list(lean_buffers.values())
        self._outer = set(id(b) for b in outer.values())

    def _stack_pairs(self, mode, shape):
        """Make each (S_t, B_t) blob pair of ``mode`` the halves of one (N, 2C, H, W) array (kept between
        forwards of the same shape)."""
        n, c, h, w = shape
        for k, (spatial, bilateral) in enumerate(self._pairs[mode]):
            stack = self._stacks.get((mode, k))
            if stack is None or stack.shape != (n, 2 * c, h, w):
                stack = self._stacks[(mode, k)] = np.empty((n, 2 * c, h, w), self.dtype)
            spatial.data = stack[:, :c]
            bilateral.data = stack[:, c:]
            self._stack_keys[id(spatial)] = (mode, k)

    def _message(self, k, bottoms, top):
        """Steps k, k+1, k+2 (W_s S_t, W_b B_t, their sum) as ``[W_s W_b] · [S_t; B_t]`` into ``top``."""
        stack = self._stacks[self._stack_keys[id(bottoms[0])]]
        weight = np.concatenate([self.steps[k].blobs[0].data[0, 0], self.steps[k + 1].blobs[0].data[0, 0]],
                                axis=1)
        compatibility_product(weight, stack, top.data)

    def _message_backward(self, k, bottoms, top):
        """Backward of steps k, k+1, k+2 (see :meth:`_message`): ∂[S_t; B_t] = [W_s W_b]ᵀ ∂M_t into one
        stacked diff whose halves become the diffs of S_t and B_t; ∂[W_s W_b] += ∂M_t [S_t; B_t]ᵀ."""
        spatial, bilateral = bottoms
        stack = self._stacks[self._stack_keys[id(spatial)]]
        c = spatial.shape[1]
        layers = self.steps[k], self.steps[k + 1]
        if any(layer.param_propagate_down[0] for layer in layers):
            grad = np.zeros((c, 2 * c), self.dtype)
            accumulate_weight_diff(top.diff, stack, grad)
            for layer, part in zip(layers, (grad[:, :c], grad[:, c:])):
                if layer.param_propagate_down[0]:
                    layer.blobs[0].diff[0, 0] += part
        diff = self._stacks.get("diff")
        if diff is None or diff.shape != stack.shape:
            diff = self._stacks["diff"] = np.empty(stack.shape, self.dtype)
        weight = np.concatenate([layers[0].blobs[0].data[0, 0], layers[1].blobs[0].data[0, 0]], axis=1)
        apply_compatibility(weight.T, top.diff, diff)
        spatial.diff = diff[:, :c]
        bilateral.diff = diff[:, c:]

    def _internal_blobs(self):
        inner = [b for b in self._full_table.values() if id(b) not in self._outer]
        return inner + self._lean_buffers

    def _release(self):
        for b in self._internal_blobs():
            b.release()
        self._stacks.clear()

    def _share_params(self):
        for layer in self.steps:
            if layer.type == "Compatibility":
                index = PARAM_SUFFIXES.index(layer.layer_param.param[0].name[len(self.name) + 1:])
                layer.blobs = [self.blobs[index]]
                layer.param_propagate_down = [self.param_propagate_down[index]]

    def reshape(self, bottom, top):
        unary, q0, data = bottom
        if unary.num_axes != 4 or q0.shape != unary.shape:
            raise self.shape_error("unary '%s' %s and Q0 '%s' %s must be equal N x C x H x W shapes"
                                   % (unary.name, unary.shape_string(), q0.name, q0.shape_string()))
        c = unary.shape[1]
        for i, blob in enumerate(self.blobs):
            if blob.shape != (1, 1, c, c):
                raise self.shape_error("parameter %d has shape %s, expected 1 1 %d %d for %d classes"
                                       % (i, blob.shape_string(), c, c, c))
        self._share_params()
        for mode in ("full", "lean") if self.keep_buffers else ("lean",):
            for layer, (bottoms, tops) in zip(self.steps, self._plans[mode]):
                layer.reshape(bottoms, tops)
        self._stored_forward = False

    # -- forward / backward ------------------------------------------------------------------------------------
    def _run_forward(self, mode):
        plan = self._plans[mode]
        if mode == "full":
            for layer, (bottoms, tops) in zip(self.steps, plan):
                layer.reshape(bottoms, tops)
        self._stack_pairs(mode, plan[0][0][0].shape)
        fused = set(self._message_steps)
        unary_add = set(j for j in range(1, len(self.steps)) if self.steps[j].type == "UnaryAdd"
                        and self.steps[j - 1].type == "Compatibility" and plan[j][0][1] is plan[j - 1][1][0])
        k = 0
        with self.cache.pinned():               # the image is hashed once per forward, not by all 2T filters
            while k < len(self.steps):
                if k in fused:
                    # W_s S_t + W_b B_t: the two Compatibility steps' bottoms, the Eltwise step's top
                    self._message(k, [plan[k][0][0], plan[k + 1][0][0]], plan[k + 2][1][0])
                    k += 3
                    continue
                if self.steps[k].type == "Compatibility":
                    weight = self.steps[k].blobs[0].data[0, 0]
                    if mode == "lean" and k + 1 in unary_add:
                        # L_t = U − μ M_t in one pass (the lean forward keeps no Φ_t)
                        compatibility_product(weight, plan[k][0][0].data, plan[k + 1][1][0].data,
                                              base=plan[k + 1][0][0].data)
                        k += 2
                        continue
                    # Φ_t = μ M_t: the Compatibility step's product, off BLAS (see compatibility_product)
                    compatibility_product(weight, plan[k][0][0].data, plan[k][1][0].data)
                    k += 1
                    continue
                self.steps[k].forward(*plan[k])
                k += 1
        self._stored_forward = mode == "full"

    # -- the fused CPU path (meanfield_fused) -----------------------------------------------------------------
    def _fused_applies(self, bottom):
        """Whether the fused CPU kernels run this layer: CPU lattices and at least one pixel."""
        return self.backend == "cpu" and bottom[0].count > 0

    def _lattices(self, bottom):
        """``(spatial, [bilateral per image])``: the cached lattice entries of the fused kernels."""
        unary, _, data = bottom
        n, _, h, w = unary.shape
        mp = self.layer_param.multi_stage_meanfield_param
        self.cache.reserve(n)
        spatial = self.cache.spatial(h, w, float(mp.theta_gamma), self.dtype)
        bilateral = [self.cache.bilateral(data.data[i], float(mp.theta_alpha), float(mp.theta_beta), self.dtype)
                     for i in range(n)]
        return spatial, bilateral

    def _fused_forward(self, bottom, top, keep):
        """The forward in :func:`meanfield_fused.forward_image`, image by image, into ``top[0]``; with
        ``keep`` the per-image records the backward needs are stored."""
        unary, q0, _ = bottom
        n, c, h, w = unary.shape
        spatial, bilateral = self._lattices(bottom)
        weights = [blob.data[0, 0] for blob in self.blobs]
        self._records = [forward_image(unary.data[i].reshape(c, h * w), q0.data[i].reshape(c, h * w), spatial,
                                       bilateral[i], weights, self.num_iterations,
                                       top[0].data[i].reshape(c, h * w), keep) for i in range(n)]
        self._stored_forward = keep

    def _fused_backward(self, top, propagate_down, bottom):
        """The backward in :func:`meanfield_fused.backward_image` from the stored records: ∂U and ∂Q0
        overwritten where asked for, the three parameter diffs accumulated."""
        unary, q0, _ = bottom
        n, c, h, w = unary.shape
        weights = [blob.data[0, 0] for blob in self.blobs]
        params = [blob.diff[0, 0] if flag else None for blob, flag in zip(self.blobs, self.param_propagate_down)]
        for i, record in enumerate(self._records):
            backward_image(record, weights, top[0].diff[i].reshape(c, h * w),
                           unary.diff[i].reshape(c, h * w) if propagate_down[0] else None,
                           q0.diff[i].reshape(c, h * w) if propagate_down[1] else None, params)

    def forward_cpu(self, bottom, top):
        self._share_params()
        if self._fused_applies(bottom):
            self._fused_forward(bottom, top, self.keep_buffers)
        elif self.keep_buffers:
            self._run_forward("full")
        else:
            for layer, (bottoms, tops) in zip(self.steps, self._plans["lean"]):
                layer.reshape(bottoms, tops)
            self._run_forward("lean")

    def backward_cpu(self, top, propagate_down, bottom):
        self._share_params()
        if self._fused_applies(bottom):
            if not self._stored_forward:          # a lean forward kept nothing: run it again, keeping
                self._fused_forward(bottom, [Blob(top[0].shape, self.dtype)], True)
            self._fused_backward(top, propagate_down, bottom)
            if len(propagate_down) > 2 and propagate_down[2]:
                bottom[2].diff[...] = 0
            if not self.keep_buffers:
                self._records = []
                self._stored_forward = False
            return
        if not self._stored_forward:
            self._run_forward("full")
        needs = {id(b): True for b in self._full_table.values() if id(b) not in self._outer}
        needs[id(bottom[0])] = bool(propagate_down[0])
        needs[id(bottom[1])] = bool(propagate_down[1])
        needs[id(bottom[2])] = False
        plan = self._plans["full"]
        fused = set(k + 2 for k in self._message_steps)
        written = set()
        scratch = {}
        k = len(self.steps) - 1
        while k >= 0:
            if k in fused:
                self._message_backward(k - 2, [plan[k - 2][0][0], plan[k - 1][0][0]], plan[k][1][0])
                written.update((id(plan[k - 2][0][0]), id(plan[k - 1][0][0])))
                k -= 3
                continue
            layer, (bottoms, tops) = self.steps[k], plan[k]
            flags = [needs[id(b)] for b in bottoms]
            # fan-out: a blob read by several steps (the unary, each P_t) sums the diffs of its readers; a
            # later reader's step writes into a scratch array that is then added
            held = []
            for i, (b, f) in enumerate(zip(bottoms, flags)):
                if f and id(b) in written:
                    buf = scratch.get((i, b.shape))
                    if buf is None:
                        buf = scratch[(i, b.shape)] = np.empty(b.shape, self.dtype)
                    held.append((b, b.diff))
                    b.diff = buf
            layer.backward(tops, flags, bottoms)
            for b, total in held:
                total += b.diff
                b.diff = total
            written.update(id(b) for b, f in zip(bottoms, flags) if f)
            k -= 1
        if len(propagate_down) > 2 and propagate_down[2]:
            bottom[2].diff[...] = 0
        if not self.keep_buffers:
            self._release()
            self._stored_forward = False

    def allow_force_backward(self, bottom_index):
        return bottom_index < 2
