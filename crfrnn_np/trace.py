r"""What one MultiStageMeanfield layer does, iteration by iteration (the library side of ``crfrnn trace``).

The layer runs its ``STEPS`` engine, so every number recorded here is a blob of the step-layer sub-net
(:attr:`MultiStageMeanfieldLayer.steps_net`), read after the forward (and, with a label, the backward):

=============================  =====================  =========================================================
dataset                        shape                  meaning (one image of the batch, t = 1..T)
=============================  =====================  =========================================================
``Q``                          (T+1, C, H, W)         Q[0] = softmax(Q0), Q[t] = softmax(L_t)
``spatial``, ``bilateral``     (T, C, H, W)           S_t, B_t: the normalised messages, computed from Q[t-1]
``pairwise``                   (T, C, H, W)           Φ_t = μ (W_s S_t + W_b B_t)
``logits``                     (T, C, H, W)           L_t = U − Φ_t (``logits[T-1]`` is the layer's top)
``energy``                     (T+1,)                 F(Q[t]), the mean-field free energy (below)
``unary``                      (C, H, W)              U
``W_s``, ``W_b``, ``mu``       (C, C)                 the parameters
``loss``                       ()                     with a label: SoftmaxWithLoss(top, label), VALID, ignore 255
``unary_grad``                 (C, H, W)              ∂ℓ/∂U
``unary_grad_by_iteration``    (T, C, H, W)           ∂ℓ/∂L_t: the part of ∂ℓ/∂U entering through iteration t's
                                                      UnaryAdd (their sum is ``unary_grad``)
``W_s_grad``, ``W_b_grad``,    (T, C, C)              iteration t's share of ∂ℓ/∂W_s, ∂ℓ/∂W_b, ∂ℓ/∂μ
``mu_grad``
=============================  =====================  =========================================================

The free energy
---------------
With A_x = μ W_x and K̃_x = diag(norm_x) K_x the normalised filter (x = spatial, bilateral), the update is
L_t = U − Φ[Q_{t−1}] with Φ[Q] = Σ_x A_x K̃_x Q. Its free energy, for a factorised Q, is

.. math:: F(Q) = \sum_{i,l} Q_i(l) \log Q_i(l) - \sum_{i,l} Q_i(l) U_i(l) + \tfrac12 \sum_{i,l} Q_i(l)\, \Phi[Q]_i(l)

(entropy, unary and pairwise terms): Q_t = softmax(U − Φ[Q_{t−1}]) is where ∂F/∂Q_i vanishes when the
pairwise operator is symmetric. With the CRF's energy E(x) = −Σ_i U_i(x_i) + ½ Σ_{i,j} Σ_x A_x[x_i, x_j]
K̃_x[i, j] and its Gibbs distribution P = exp(−E)/Z,

    F(Q) + log Z = KL(Q ‖ P) + ½ Σ_i Σ_x K̃_x[i, i] (Q_iᵀ A_x Q_i − Σ_l Q_i(l) A_x[l, l]):

the lattice filter pairs each pixel with itself, and F counts that pair with two independent labels, E with
one. The last term vanishes for a one-hot Q and is ≥ 0 for Potts-like A_x = −w I, so F + log Z ≥ KL ≥ 0
there: F bounds −log Z from above, which is why it is negative (Z sums exp(−E) over all labellings).
pydensecrf's ``klDivergence`` is Σ Q log Q − Σ Q U + Σ Q Φ[Q] (no ½, no log Z), so
F = (klDivergence + Σ Q log Q − Σ Q U) / 2; the tests check that relation and the identity above
(``docs/walkthrough.md`` §3).

Parallel mean field is guaranteed to lower F when the pairwise operator Σ_x A_x ⊗ K̃_x is symmetric and
negative semidefinite (the update is then a concave-convex step; Krähenbühl and Koltun, ICML 2013): a
Potts-like μ W_x and a symmetric kernel. CRF-RNN's normalised filter diag(1/K𝟙) K is not symmetric, nor is
the lattice's K exactly (the blur order), and a learned μ need not be symmetric or negative
semidefinite, so :func:`energy_caveats` names what breaks the guarantee and F may rise.
"""
import numpy as np

from .blob import Blob
from .errors import NetError, ShapeError
from .image import MEAN_BGR

#: One line per dataset for the HDF5 attributes (``description`` of each dataset).
DESCRIPTIONS = {
    "Q": "Q[0] = softmax(Q0), Q[t] = softmax(L_t) (T+1, C, H, W)",
    "spatial": "S_t = norm_s * K_s Q[t-1], the normalised spatial message (T, C, H, W)",
    "bilateral": "B_t = norm_b * K_b Q[t-1], the normalised bilateral message (T, C, H, W)",
    "pairwise": "Phi_t = mu (W_s S_t + W_b B_t) (T, C, H, W)",
    "logits": "L_t = U - Phi_t; logits[T-1] is the layer's top (T, C, H, W)",
    "energy": "F(Q[t]) = sum Q log Q - sum Q U + 1/2 sum Q Phi[Q], the mean-field free energy (T+1,)",
    "unary": "U, the unary bottom (C, H, W)",
    "W_s": "spatial kernel weights (C, C)", "W_b": "bilateral kernel weights (C, C)",
    "mu": "compatibility transform (C, C)",
    "label": "ground-truth labels, 255 = ignored (H, W)",
    "image": "the image bottom as RGB, the mean added back (H, W, 3)",
    "unary_grad": "d loss / d U (C, H, W)",
    "unary_grad_by_iteration": "d loss / d L_t, the part of d loss / d U entering through iteration t (T, C, H, W)",
    "W_s_grad": "iteration t's part of d loss / d W_s (T, C, C)",
    "W_b_grad": "iteration t's part of d loss / d W_b (T, C, C)",
    "mu_grad": "iteration t's part of d loss / d mu (T, C, C)",
}


def free_energy(q, unary, pairwise):
    """F(Q) = Σ Q log Q − Σ Q U + ½ Σ Q Φ[Q] in float64 (0 log 0 = 0).

    Parameters
    ----------
    q, unary, pairwise : ndarray, (C, H, W)
        Marginals Q, unary U and the pairwise term Φ[Q] computed from this very Q.
    """
    q = np.asarray(q, dtype=np.float64)
    entropy = float(np.sum(q * np.log(np.where(q > 0, q, 1.0))))
    return entropy - float(np.sum(q * unary)) + 0.5 * float(np.sum(q * pairwise))


def energy_caveats(w_s, w_b, mu):
    """Why parallel mean field may raise F for these parameters (module docstring), one reason a line.

    The filter's two reasons always apply to CRF-RNN; the parameter reasons apply when μ W_x is not
    symmetric, or not negative semidefinite.
    """
    reasons = ["the normalised filter diag(1/K1) K is not symmetric",
               "the permutohedral K is symmetric only approximately (blur order)"]
    for name, w in (("W_s", w_s), ("W_b", w_b)):
        a = np.asarray(mu, np.float64) @ np.asarray(w, np.float64)
        if not np.allclose(a, a.T, rtol=0, atol=1e-12 * max(1.0, np.abs(a).max())):
            reasons.append("mu %s is not symmetric" % name)
        elif np.linalg.eigvalsh(a).max() > 1e-12 * max(1.0, np.abs(a).max()):
            reasons.append("mu %s is not negative semidefinite (not Potts-like)" % name)
    return reasons


def meanfield_layers(net):
    """Names of the MultiStageMeanfield layers of a net (or a parsed NetParameter), in order."""
    from .proto import Message
    layers = net.layer if isinstance(net, Message) else net.layers
    return [layer.name for layer in layers if layer.type == "MultiStageMeanfield"]


def use_steps_engine(net_param, layer=None):
    """Set ``engine: STEPS`` on one MultiStageMeanfield layer of a parsed NetParameter (in place).

    Parameters
    ----------
    net_param : Message (NetParameter), upgraded
    layer : str, optional
        The layer's name; default the first MultiStageMeanfield layer.

    Returns
    -------
    str
        The layer's name.

    Raises
    ------
    NetError
        If the net has no MultiStageMeanfield layer, or ``layer`` is not one.
    """
    crf = meanfield_layers(net_param)
    if not crf:
        raise NetError("net '%s' has no MultiStageMeanfield layer to trace" % net_param.name)
    name = layer or crf[0]
    if name not in crf:
        types = {lp.name: lp.type for lp in net_param.layer}
        if name in types:
            raise NetError("layer '%s' is a %s layer, not a MultiStageMeanfield layer (those: %s)"
                           % (name, types[name], ", ".join(crf)))
        raise NetError("net '%s' has no layer '%s' (MultiStageMeanfield layers: %s)"
                       % (net_param.name, name, ", ".join(crf)))
    lp = [lp for lp in net_param.layer if lp.name == name][0]
    lp.multi_stage_meanfield_param.engine = "STEPS"
    return name


def check_label(label, num_classes, shape, image_shape=None):
    """A label map as (H, W) int64, padded with 255 to the net's H x W when it has the un-padded image's size.

    Parameters
    ----------
    label : ndarray, (h, w) integers
    num_classes : int
    shape : (H, W)
        The CRF layer's spatial size.
    image_shape : (h, w), optional
        The image's size before padding (``--image``); a label of this size is padded with 255.

    Raises
    ------
    ShapeError
        Wrong size, or classes >= C other than 255.
    """
    label = np.asarray(label)
    if label.ndim == 3 and label.shape[0] == 1:
        label = label[0]
    if label.ndim != 2 or label.dtype.kind not in "iub":
        raise ShapeError("the label must be an (H, W) map of class indices, got %s of shape %s"
                         % (label.dtype, label.shape))
    H, W = shape
    if label.shape != (H, W):
        if image_shape is None or label.shape != tuple(image_shape):
            raise ShapeError("the label is %d x %d (H x W) but the CRF layer's maps are %d x %d"
                             % (label.shape[0], label.shape[1], H, W))
        padded = np.full((H, W), 255, np.int64)
        padded[:label.shape[0], :label.shape[1]] = label
        label = padded
    label = label.astype(np.int64)
    bad = (label >= num_classes) & (label != 255) | (label < 0)
    if bad.any():
        values = sorted(set(label[bad].tolist()))[:8]
        raise ShapeError("the label has classes outside 0..%d (and 255, ignored): %s"
                         % (num_classes - 1, ", ".join(map(str, values))))
    return label


class MeanfieldTrace:
    """The recorded iterations of one image: ``arrays`` (name -> ndarray, see the module table) and
    ``attrs`` (name -> scalar or string)."""

    def __init__(self, arrays, attrs):
        self.arrays = arrays
        self.attrs = attrs

    def __getitem__(self, name):
        return self.arrays[name]

    def __contains__(self, name):
        return name in self.arrays

    @property
    def num_iterations(self):
        return int(self.attrs["T"])

    def rows(self):
        """Per t = 0..T: ``(t, energy, ΔF, mean |ΔQ|, label flips, ‖∂ℓ/∂L_t‖ or nan)``."""
        q, energy = self.arrays["Q"], self.arrays["energy"]
        grads = self.arrays.get("unary_grad_by_iteration")
        labels = q.argmax(axis=1)
        rows = []
        for t in range(q.shape[0]):
            if t == 0:
                rows.append((0, float(energy[0]), float("nan"), float("nan"), 0, float("nan")))
                continue
            change = float(np.mean(np.abs(q[t].astype(np.float64) - q[t - 1])))
            flips = int(np.count_nonzero(labels[t] != labels[t - 1]))
            norm = float(np.linalg.norm(grads[t - 1].astype(np.float64))) if grads is not None else float("nan")
            rows.append((t, float(energy[t]), float(energy[t] - energy[t - 1]), change, flips, norm))
        return rows

    def table(self):
        """The per-iteration table ``crfrnn trace`` prints."""
        lines = ["%4s %16s %13s %12s %10s %14s" % ("t", "energy F(Q_t)", "delta F", "mean|dQ|", "flips",
                                                    "|dloss/dL_t|")]
        for t, f, df, dq, flips, g in self.rows():
            lines.append("%4d %16.6g %13s %12s %10s %14s"
                         % (t, f, "" if t == 0 else "%+.4g" % df, "" if t == 0 else "%.3g" % dq,
                            "" if t == 0 else flips, "" if np.isnan(g) else "%.4g" % g))
        return "\n".join(lines)

    def write_hdf5(self, path):
        """Write the datasets and attributes to an HDF5 file, atomically (temporary name, then rename)."""
        import os
        import h5py
        from .atomic import atomic_path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                for name, value in self.arrays.items():
                    value = np.asarray(value)
                    if value.ndim >= 3 and value.size > 4096:     # the maps: compressed, one chunk per map
                        chunks = (1,) + value.shape[1:] if value.ndim == 4 else True
                        dataset = f.create_dataset(name, data=value, compression="lzf", shuffle=True,
                                                   chunks=chunks)
                    else:
                        dataset = f.create_dataset(name, data=value)
                    if name in DESCRIPTIONS:
                        dataset.attrs["description"] = DESCRIPTIONS[name]
                for name, value in self.attrs.items():
                    f.attrs[name] = value

    @classmethod
    def read_hdf5(cls, path):
        import h5py
        with h5py.File(path, "r") as f:
            arrays = {name: f[name][()] for name in f}
            attrs = {name: (value.decode() if isinstance(value, bytes) else value) for name, value in f.attrs.items()}
        return cls(arrays, attrs)


def _pairwise_of(steps_net, name, prob, image):
    """Φ[prob] by iteration 1's own step layers (both filters, the two weightings, their sum, μ), batch-wide."""
    layers = {layer.name: layer for layer in steps_net.layers}
    step = lambda kind: layers["%s_iter1_%s" % (name, kind)]       # noqa: E731
    dtype = steps_net.dtype
    blobs = {key: Blob((), dtype, key) for key in ("prob", "spatial", "bilateral", "spatial_w", "bilateral_w",
                                                     "message", "pairwise")}
    blobs["prob"].reshape(prob.shape)
    blobs["prob"].data = prob
    plan = [("spatial", ["prob", image], "spatial"), ("bilateral", ["prob", image], "bilateral"),
            ("spatial_weight", ["spatial"], "spatial_w"), ("bilateral_weight", ["bilateral"], "bilateral_w"),
            ("message", ["spatial_w", "bilateral_w"], "message"), ("compatibility", ["message"], "pairwise")]
    for kind, bottoms, top in plan:
        bottom = [b if isinstance(b, Blob) else blobs[b] for b in bottoms]
        step(kind).reshape(bottom, [blobs[top]])
        step(kind).forward(bottom, [blobs[top]])
    return blobs["pairwise"].data


def _weight_grad(top_diff, bottom):
    """Σ over pixels of top_diff · bottomᵀ for one image (the Compatibility step's weight gradient)."""
    from crfrnn_np.layers.compatibility import accumulate_weight_diff
    grad = np.zeros((top_diff.shape[0], bottom.shape[0]), np.float64)
    accumulate_weight_diff(top_diff[None].astype(np.float64), bottom[None].astype(np.float64), grad)
    return grad


def trace_layer(net, layer_name, index=0, label=None):
    """Run a net whose MultiStageMeanfield layer ``layer_name`` uses the STEPS engine, and record its iterations.

    The net's inputs must already hold their data. The whole net runs forward (the layers before the CRF
    give its bottoms); with a ``label`` the SoftmaxWithLoss of image ``index``'s top and the backward through
    the CRF layer follow (the net's other layers do not run backward).

    Parameters
    ----------
    net : Net
        Built with ``engine: STEPS`` on the layer (:func:`use_steps_engine`).
    layer_name : str
    index : int
        The image of the batch to record.
    label : ndarray (H, W) int, optional
        Class indices, 255 ignored (see :func:`check_label`).

    Returns
    -------
    MeanfieldTrace
    """
    from .proto import parse
    from .layer import create_layer
    from crfrnn_np.layers.softmax import softmax as softmax_step
    i = net.layer_names.index(layer_name)
    layer = net.layers[i]
    if layer.type != "MultiStageMeanfield" or layer.engine != "STEPS":
        raise NetError("layer '%s' is not a MultiStageMeanfield layer running the STEPS engine" % layer_name)
    if layer.untied:        # the free energy and its caveats are those of one CRF: one W_s, W_b, mu
        raise NetError("layer '%s' is untied (one W_s, W_b, mu per iteration); the trace records the tied "
                       "layer only" % layer_name)
    bottom, top = net.bottom_vecs[i], net.top_vecs[i]
    if not 0 <= index < bottom[0].shape[0]:
        raise ShapeError("image index %d is outside the batch of %d" % (index, bottom[0].shape[0]))
    layer.keep_iterations = True
    net.forward_prefilled()
    steps = layer.steps_engine
    sub, name, T = steps.net, steps.layer_param.name, layer.num_iterations
    blob = lambda t, role: sub.blobs["%s_iter%d_%s" % (name, t, role)]                 # noqa: E731
    logits_blob = lambda t: steps.output if t == T else blob(t, "logits")             # noqa: E731
    unary = bottom[0].data[index]
    # Q_t as the Softmax steps made it (Q_t is iteration t+1's P), Q_T by the same softmax applied to the top
    arrays = {"Q": np.stack([blob(t + 1, "prob").data[index] for t in range(T)]
                            + [softmax_step(top[0].data[index], 0)])}
    for role in ("spatial", "bilateral", "pairwise"):
        arrays[role] = np.stack([blob(t, role).data[index] for t in range(1, T + 1)])
    arrays["logits"] = np.stack([logits_blob(t).data[index] for t in range(1, T + 1)])
    arrays["unary"] = unary.copy()
    # the picture back from the mean-subtracted BGR image bottom (the padding shows as the mean colour)
    bgr = bottom[2].data[index][:3].astype(np.float64) + MEAN_BGR[:, None, None]
    arrays["image"] = np.clip(np.rint(bgr[::-1].transpose(1, 2, 0)), 0, 255).astype(np.uint8)
    for key, b in zip(("W_s", "W_b", "mu"), layer.blobs):
        arrays[key] = b.data[0, 0].copy()
    # F(Q_t): Φ[Q_t] is iteration t+1's pairwise term; for Q_T, iteration 1's steps are run once more
    last = _pairwise_of(sub, name, softmax_step(top[0].data, 1), steps.inputs[2])
    pairwise = [blob(t, "pairwise").data[index] for t in range(1, T + 1)] + [last[index]]
    arrays["energy"] = np.array([free_energy(arrays["Q"][t], unary, pairwise[t]) for t in range(T + 1)])
    mp = layer.layer_param.multi_stage_meanfield_param
    caveats = energy_caveats(arrays["W_s"], arrays["W_b"], arrays["mu"])
    attrs = {"T": T, "theta_alpha": float(mp.theta_alpha), "theta_beta": float(mp.theta_beta),
             "theta_gamma": float(mp.theta_gamma), "layer": layer_name, "engine": "STEPS", "index": int(index),
             "dtype": net.dtype.name, "energy_decrease_guaranteed": not caveats,
             "energy_caveats": "; ".join(caveats)}
    if label is not None:
        c, h, w = unary.shape
        label = check_label(label, c, (h, w))
        arrays["label"] = label.astype(np.uint8)
        loss_param = parse('name: "trace_loss" type: "SoftmaxWithLoss" bottom: "pred" bottom: "label" '
                           'top: "loss" loss_param { ignore_label: 255 normalization: VALID }', "LayerParameter")
        loss_layer = create_layer(loss_param, phase="TRAIN", dtype=net.dtype)
        scores, labels, loss = Blob((1, c, h, w), net.dtype, "pred"), Blob((1, 1, h, w), net.dtype, "label"), \
            Blob((), net.dtype, "loss")
        scores.data = top[0].data[index:index + 1]
        labels.data = label[None, None]
        loss_layer.setup([scores, labels], [loss])
        attrs["loss"] = float(loss_layer.forward([scores, labels], [loss]))
        loss_layer.backward([loss], [True, False], [scores, labels])
        for b in layer.blobs:
            b.diff[...] = 0
        top[0].diff[...] = 0
        top[0].diff[index] = scores.diff[0]
        layer.param_propagate_down = [True, True, True]
        layer.backward(top, [True, True, False], bottom)
        arrays["unary_grad"] = bottom[0].diff[index].copy()
        arrays["unary_grad_by_iteration"] = np.stack([logits_blob(t).diff[index] for t in range(1, T + 1)])
        for key, (role_top, role_bottom) in (("W_s_grad", ("spatial_w", "spatial")),
                                             ("W_b_grad", ("bilateral_w", "bilateral")),
                                             ("mu_grad", ("pairwise", "message"))):
            arrays[key] = np.stack([_weight_grad(blob(t, role_top).diff[index], blob(t, role_bottom).data[index])
                                    for t in range(1, T + 1)])
    return MeanfieldTrace(arrays, attrs)
