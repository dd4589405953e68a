"""Finite-difference gradient checking, as a library feature (Caffe's ``GradientChecker``).

The checker compares each layer's analytic backward with central differences of its forward:

* **objective**: ``check_gradient`` uses ``E = ½ Σ top²`` (top diff = top); ``check_gradient_exhaustive``
  checks one top element ``i`` at a time with ``E = 2·top[i]`` (top diff = 2 at ``i``, 0 elsewhere), as Caffe's
  ``CheckGradientExhaustive`` does; ``check_gradient_eltwise`` finite-differences only element ``i`` of each
  bottom for top element ``i`` and requires every other analytic entry to be ~0.
* **numeric estimate**: ``(E(x + h) − E(x − h)) / 2h`` for every element ``x`` of every checked blob (bottoms and
  parameter blobs). The random stream is re-seeded before every forward so Dropout masks repeat.
* **kink**: an element is compared only if ``|x| < kink − kink_range`` or ``|x| > kink + kink_range`` (ReLU and
  max-pooling are not differentiable at the kink); ``kink_range < 0`` (default) compares everything.
* **pass criterion**: ``|analytic − estimate| <= threshold · max(|analytic|, |estimate|, 1)``.
* **bottoms without a gradient**: a layer lists the bottoms that carry no gradient by design in
  ``no_gradient_bottoms`` (a loss's labels; the image of the CRF layers, which only fixes the lattice
  features: finite differences would see the lattice change, the backward rightly says zero). Checking all
  bottoms (``check_bottom=-1``) skips those, as Caffe's checker is told which bottom to check; naming one
  explicitly checks it anyway.
* **ties**: MAX pooling and Eltwise MAX are not differentiable where inputs tie, and inside a net they tie
  everywhere a ReLU zeroed a whole window; ``check_net`` checks such a layer (``differentiable_at_ties``
  False) at bottoms that are a random permutation of 0, 1, 2, ... with a step of 0.02 instead, and says so:
  every gap is then at least 1 and no argmax switches within ±h (with normal random values a million
  windows would see about a hundred switches at h = 1e-5).

``check_gradient_directional`` (Chainer's ``check_backward``) checks ``⟨∇E, r⟩`` against a two-point
difference along random directions ``r``: cheap enough for the lattice filter and the whole mean-field
layer. ``check_net`` runs a check layer by layer over a whole :class:`crfrnn_np.Net`.

Use float64 layers and blobs for tight thresholds; Caffe's own float32 settings are (1e-2, 1e-3).
"""
import copy

import numpy as np

from . import random as crfrnn_random


class GradientCheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numeric estimate."""


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class GradientChecker:
    """Caffe-style finite-difference checker.

    Parameters
    ----------
    stepsize : float
        ``h`` of the central difference.
    threshold : float
        Relative tolerance (scaled by ``max(|a|, |n|, 1)``).
    seed : int
        Seed of the shared random stream before every forward.
    kink, kink_range : float
        Skip elements with ``|x|`` within ``kink_range`` of ``kink`` (``kink_range < 0``: never skip).
    """

    def __init__(self, stepsize=1e-2, threshold=1e-3, seed=1701, kink=0.0, kink_range=-1.0):
        self.stepsize = float(stepsize)
        self.threshold = float(threshold)
        self.seed = seed
        self.kink = float(kink)
        self.kink_range = float(kink_range)

    # -- plumbing ----------------------------------------------------------------------------------------
    def _forward(self, layer, bottom, top):
        crfrnn_random.set_seed(self.seed)
        layer.forward(bottom, top)

    @staticmethod
    def skipped_bottoms(layer, bottom, check_bottom=-1):
        """``[(index, blob name, why)]``: the bottoms a check of ``layer`` leaves out (see the module doc)."""
        if check_bottom >= 0:
            return []
        return [(i, bottom[i].name, why) for i, why in sorted(layer.no_gradient_bottoms.items()) if i < len(bottom)]

    def _blobs_to_check(self, layer, bottom, check_bottom):
        skip = {i for i, _, _ in self.skipped_bottoms(layer, bottom, check_bottom)}
        blobs, names = [], []
        for j, b in enumerate(layer.blobs):
            if j >= len(layer.param_propagate_down) or layer.param_propagate_down[j]:
                blobs.append(b)
                names.append("param %d" % j)
        propagate_down = [False] * len(bottom)
        for i, b in enumerate(bottom):
            if (check_bottom < 0 and i not in skip) or check_bottom == i:
                if any(b is t for t in blobs):
                    continue
                blobs.append(b)
                names.append("bottom %d" % i)
                propagate_down[i] = True
        return blobs, names, propagate_down

    def _analytic(self, layer, bottom, top, propagate_down, blobs, top_id, top_index):
        """Forward, set the objective's top diffs, backward; return copies of the checked diffs."""
        for b in layer.blobs:
            b.diff[...] = 0
        self._forward(layer, bottom, top)
        self._set_top_diff(top, top_id, top_index)
        layer.backward(top, propagate_down, bottom)
        return [b.diff.copy() for b in blobs]

    @staticmethod
    def _set_top_diff(top, top_id, top_index):
        if top_id is None:
            for t in top:
                t.diff[...] = t.data
        else:
            for t in top:
                t.diff[...] = 0
            top[top_id].diff.flat[top_index] = 2.0

    @staticmethod
    def _objective(top, top_id, top_index):
        if top_id is None:
            return sum(0.5 * float(np.sum(t.data.astype(np.float64) ** 2)) for t in top)
        return 2.0 * float(top[top_id].data.flat[top_index])

    def _compare(self, analytic, estimate, feature, what, failures):
        if self.kink_range >= 0 and not (abs(feature) < self.kink - self.kink_range
                                         or abs(feature) > self.kink + self.kink_range):
            return 0.0
        scale = max(abs(analytic), abs(estimate), 1.0)
        err = abs(analytic - estimate) / scale
        if err > self.threshold:
            failures.append((err, what, analytic, estimate))
        return err

    @staticmethod
    def _raise(failures, layer):
        if not failures:
            return
        failures.sort(key=lambda f: -f[0])
        lines = ["gradient check failed for %r: %d element(s) beyond the threshold; worst:" % (layer, len(failures))]
        for err, what, a, n in failures[:10]:
            lines.append("  %-40s analytic %+.6e  numeric %+.6e  rel.err %.3e" % (what, a, n, err))
        raise GradientCheckError("\n".join(lines))

    # -- modes ---------------------------------------------------------------------------------------------
    def check_gradient_single(self, layer, bottom, top, check_bottom=-1, top_id=None, top_index=0,
                              element_wise=False):
        """Check all checked blobs' gradients for one objective; return the largest relative error."""
        blobs, names, propagate_down = self._blobs_to_check(layer, bottom, check_bottom)
        analytic = self._analytic(layer, bottom, top, propagate_down, blobs, top_id, top_index)
        failures, worst, h = [], 0.0, self.stepsize
        for blob, name, grad in zip(blobs, names, analytic):
            data = blob.data
            for k in range(data.size):
                if element_wise and k != top_index:
                    estimate = 0.0
                else:
                    x = data.flat[k]
                    data.flat[k] = x + h
                    self._forward(layer, bottom, top)
                    f_plus = self._objective(top, top_id, top_index)
                    data.flat[k] = x - h
                    self._forward(layer, bottom, top)
                    f_minus = self._objective(top, top_id, top_index)
                    data.flat[k] = x
                    estimate = (f_plus - f_minus) / (2.0 * h)
                what = "%s[%d] (top %s[%s])" % (name, k, top_id, top_index)
                worst = max(worst, self._compare(float(grad.flat[k]), estimate, float(data.flat[k]), what,
                                                 failures))
        self._raise(failures, layer)
        return worst

    def check_gradient(self, layer, bottom, top, check_bottom=-1):
        """Objective ½Σtop² over all tops (one backward, numeric over every element)."""
        return self.check_gradient_single(layer, bottom, top, check_bottom, None)

    def check_gradient_exhaustive(self, layer, bottom, top, check_bottom=-1):
        """Caffe's exhaustive mode: every element of every top in turn is the objective."""
        self._forward(layer, bottom, top)
        worst = 0.0
        for top_id, t in enumerate(top):
            for i in range(t.count):
                worst = max(worst, self.check_gradient_single(layer, bottom, top, check_bottom, top_id, i))
        return worst

    def check_gradient_eltwise(self, layer, bottom, top):
        """Element-wise layers: top element i depends only on element i of each bottom."""
        self._forward(layer, bottom, top)
        worst = 0.0
        for top_id, t in enumerate(top):
            for i in range(t.count):
                worst = max(worst, self.check_gradient_single(layer, bottom, top, -1, top_id, i,
                                                              element_wise=True))
        return worst

    def check_gradient_directional(self, layer, bottom, top, check_bottom=-1, n_directions=3):
        """Compare ``⟨∇E, r⟩`` with ``(E(x + h r) − E(x − h r)) / 2h`` along random directions.

        The objective is linear in the tops, ``E = Σ g·top`` with a fixed random ``g``, and ``r`` perturbs all
        checked blobs at once; ``E(x + h r) − E(x − h r)`` is summed from the tops' differences. Returns the
        largest relative error ``|a − n| / max(|a|, |n|, 1e-12)`` scaled as in the exhaustive mode when below 1
        in magnitude (``max(|a|, |n|, 1)``).
        """
        blobs, names, propagate_down = self._blobs_to_check(layer, bottom, check_bottom)
        gen = np.random.default_rng(self.seed)
        self._forward(layer, bottom, top)
        weights = [gen.standard_normal(t.shape) for t in top]
        failures, worst, h = [], 0.0, self.stepsize

        for d in range(n_directions):
            for b in layer.blobs:
                b.diff[...] = 0
            self._forward(layer, bottom, top)
            for w, t in zip(weights, top):
                t.diff[...] = w
            layer.backward(top, propagate_down, bottom)
            grads = [b.diff.astype(np.float64) for b in blobs]
            dirs = [gen.standard_normal(b.shape) for b in blobs]
            analytic = sum(float(np.sum(g * r)) for g, r in zip(grads, dirs))
            saved = [b.data.copy() for b in blobs]
            for b, r, s in zip(blobs, dirs, saved):
                b.data = s + h * r
            self._forward(layer, bottom, top)
            plus = [t.data.astype(np.float64) for t in top]
            for b, r, s in zip(blobs, dirs, saved):
                b.data = s - h * r
            self._forward(layer, bottom, top)
            for b, s in zip(blobs, saved):
                b.data = s
            # the tops' differences first, then the weighted sum: E(x+hr) − E(x−hr) without cancelling two
            # large sums (their rounding, ~1e-16 |E| / h, would swamp a small step)
            estimate = sum(float(np.sum(w * (p - t.data))) for w, p, t in zip(weights, plus, top)) / (2.0 * h)
            worst = max(worst, self._compare(analytic, estimate, np.inf, "direction %d over %s"
                                             % (d, ", ".join(names)), failures))
        self._forward(layer, bottom, top)
        self._raise(failures, layer)
        return worst

    # -- whole nets ----------------------------------------------------------------------------------------
    def check_net(self, net, layer_names=None, mode="directional", n_directions=3):
        """Check every layer of ``net`` that has a backward (or only ``layer_names``), layer by layer.

        Returns a list of rows ``(layer name, type, max relative error, skipped, notes)`` with ``skipped`` the
        bottoms left out, ``[(index, blob name, why)]``, and ``notes`` other remarks (bottoms drawn at random);
        raises GradientCheckError listing the failing layers after checking all of them.
        """
        rows, failed = [], []
        net.forward_prefilled()
        for i, layer in enumerate(net.layers):
            if layer_names is not None and layer.name not in layer_names:
                continue
            bottom, top = net.bottom_vecs[i], net.top_vecs[i]
            if layer.type in ("Input", "Split", "HDF5Data", "Data", "Accuracy") or \
                    (not layer.blobs and not bottom):
                continue
            if any(b is t for b in bottom for t in top):
                continue  # in-place layers overwrite their input; checked by their own unit tests
            check_bottom = 0 if layer.is_loss else -1
            notes, saved, checker = [], None, self
            if not layer.differentiable_at_ties:
                # distinct integers (one random permutation over all bottoms): every gap is at least 1, so with
                # h = 0.02 no argmax switches inside x ± h r (|r_i − r_j| would have to exceed 50), the layer is
                # linear there (no truncation error), and the rounding of x ± h r (x up to the element count,
                # ~1e-16 x / h relative) stays far below the threshold
                checker = copy.copy(self)
                checker.stepsize = 0.02
                saved = [b.data.copy() for b in bottom]
                values = np.random.default_rng(self.seed + 1).permutation(sum(b.count for b in bottom))
                start = 0
                for b in bottom:
                    b.data = values[start:start + b.count].reshape(b.shape)
                    start += b.count
                notes.append("bottoms drawn as distinct integers, step 0.02: %s is not differentiable where its "
                             "inputs tie" % layer.type)
            try:
                if mode == "exhaustive":
                    err = checker.check_gradient_exhaustive(layer, bottom, top, check_bottom)
                else:
                    err = checker.check_gradient_directional(layer, bottom, top, check_bottom, n_directions)
            except GradientCheckError as e:
                failed.append(str(e))
                err = float("nan")
            finally:
                if saved is not None:                  # the net's own values back, and the layer's top from them
                    for b, value in zip(bottom, saved):
                        b.data = value
                    self._forward(layer, bottom, top)
            rows.append((layer.name, layer.type, err, self.skipped_bottoms(layer, bottom, check_bottom), notes))
        if failed:
            raise GradientCheckError("\n".join(failed))
        return rows
