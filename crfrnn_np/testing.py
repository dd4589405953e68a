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


class LayerTestCase:
    """The battery every layer passes (Chainer's ``FunctionTestCase``, Caffe's typed layer tests).

    A test module subclasses it as ``class TestReLUBattery(LayerTestCase)`` and declares the layer; pytest
    then runs the same checks on every layer:

    ``test_top_shapes``
        setup (which calls ``Layer.reshape``) gives the declared ``top_shapes``; forward writes arrays of
        those shapes and the layer's dtype; a second ``reshape`` changes nothing.
    ``test_float32_agrees_with_float64``
        the same bottoms and parameters (rounded to float32, so that only the arithmetic differs) through a
        float32 and a float64 layer: forward tops, then the bottom and parameter diffs of one backward, agree
        within ``float32_tol``; the float32 layer computes in float32. ``expected_forward``, when given,
        is a plain-NumPy reference for the float64 tops.
    ``test_gradient``
        float64 finite differences with :class:`crfrnn_np.gradcheck.GradientChecker` (mode ``gradient``:
        ``"full"``, ``"exhaustive"``, ``"eltwise"`` or ``"directional"``; ``None`` for layers without
        gradient, such as data layers and Accuracy).
    ``test_no_gradient_bottoms``
        the layer declares exactly the bottoms of ``no_gradient`` as carrying no gradient (so the checker and
        ``force_backward`` leave them out); asking for one anyway writes zeros (``"zero"``) or raises
        ``crfrnn_np.Error`` (``"error"``). A layer without backward (``gradient = None`` and bottoms) raises
        ``crfrnn_np.Error`` when any gradient is asked for.
    ``test_propagate_down``
        backward with ``propagate_down`` true for one bottom only writes that bottom's diff, the same as
        when all bottoms are asked for, and leaves the other bottoms' diffs untouched.
    ``test_bad_bottom_shapes``
        every entry of ``bad_bottom_shapes`` raises ``crfrnn_np.Error`` both at setup and when the bottoms
        of a set-up layer are reshaped to it (as ``Net.forward`` does with a new input shape), every entry of
        ``bad_reshape_shapes`` (shapes the layer's parameters cannot take) at the reshape; one bottom too
        many or too few (where the layer's blob-count rule forbids it) raises ``crfrnn_np.Error``.

    Keep the bottoms tiny: the gradient check runs two forwards per element in its full modes.
    """

    #: ``layer { ... }`` text; tops named unlike the bottoms (the battery runs out of place).
    snippet = None
    #: Shapes of the bottoms, in order, and the expected shapes of the tops (written out independently).
    bottom_shapes = ()
    top_shapes = ()
    phase = "TRAIN"
    #: Bottom index -> ``"zero"`` or ``"error"``: the bottoms that carry no gradient, and what backward does
    #: when asked for one anyway.
    no_gradient = {}
    #: Gradient-check mode (see above) and the checker's settings.
    gradient = "full"
    stepsize = 1e-5
    threshold = 1e-6
    kink = 0.0
    kink_range = -1.0
    n_directions = 3
    #: assert_allclose tolerances of the float32 layer against the float64 one.
    float32_tol = {"rtol": 1e-5, "atol": 1e-5}
    #: Lists of bottom shapes that must raise ``crfrnn_np.Error`` at setup and at a later reshape, and lists that
    #: must raise only at a reshape (shapes that the parameters made at setup cannot take, e.g. other channels).
    bad_bottom_shapes = ()
    bad_reshape_shapes = ()
    seed = 1701

    # -- what a test case may override -----------------------------------------------------------------------
    def make_bottoms(self, rng):
        """Bottom values (float64 arrays of ``bottom_shapes``); standard normal unless overridden."""
        return [rng.standard_normal(shape) for shape in self.bottom_shapes]

    def expected_forward(self, bottoms):
        """Plain-NumPy tops for the float64 ``bottoms`` (list of arrays), or None (no reference)."""
        return None

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _bottom_values(self):
        values = self.make_bottoms(np.random.default_rng(self.seed))
        return [np.asarray(v, dtype=np.float32).astype(np.float64) for v in values]

    def _make(self, dtype, values=None, shapes=None):
        from . import random as crfrnn_random
        if values is None:
            values = self._bottom_values() if shapes is None else [np.zeros(s) for s in shapes]
        crfrnn_random.set_seed(self.seed)               # the same filled parameters in every dtype
        return make_layer(self.snippet, values, dtype=dtype, phase=self.phase)

    def _forward(self, layer, bottom, top):
        from . import random as crfrnn_random
        crfrnn_random.set_seed(self.seed)               # the same Dropout mask in every dtype
        layer.forward(bottom, top)

    def _gradient_bottoms(self, bottom):
        return [i for i in range(len(bottom)) if i not in self.no_gradient]

    @staticmethod
    def _raises(what, fn, *args):
        from .errors import Error
        try:
            fn(*args)
        except Error:
            return
        raise AssertionError("%s did not raise crfrnn_np.Error" % what)

    # -- the battery -------------------------------------------------------------------------------------------
    def test_top_shapes(self):
        layer, bottom, top = self._make(np.float64)
        assert [t.shape for t in top] == [tuple(s) for s in self.top_shapes], \
            "top shapes %s, expected %s" % ([t.shape for t in top], list(self.top_shapes))
        self._forward(layer, bottom, top)
        for t, shape in zip(top, self.top_shapes):
            assert t.data.shape == tuple(shape) and t.data.dtype == np.float64, (t, t.data.shape, t.data.dtype)
            assert np.all(np.isfinite(t.data)), t
        layer.reshape(bottom, top)
        assert [t.shape for t in top] == [tuple(s) for s in self.top_shapes]

    def test_float32_agrees_with_float64(self):
        values = self._bottom_values()
        made = {dt: self._make(dt, values) for dt in (np.float64, np.float32)}
        (l64, b64, t64), (l32, b32, t32) = made[np.float64], made[np.float32]
        for p64, p32 in zip(l64.blobs, l32.blobs):          # one set of parameters, representable in both
            p32.data[...] = p64.data
            p64.data[...] = p32.data
        for layer, bottom, top in (made[np.float64], made[np.float32]):
            self._forward(layer, bottom, top)
        for a, b in zip(t32, t64):
            assert a.data.dtype == np.float32, "%r computes %s tops" % (l32, a.data.dtype)
            np.testing.assert_allclose(a.data, b.data, err_msg="forward %s" % a.name, **self.float32_tol)
        expected = self.expected_forward([b.data.copy() for b in b64])
        if expected is not None:
            for t, want in zip(t64, expected):
                np.testing.assert_allclose(t.data, want, rtol=1e-10, atol=1e-12, err_msg="reference %s" % t.name)
        if self.gradient is None:
            return
        rng = np.random.default_rng(self.seed + 1)
        propagate_down = [i not in self.no_gradient for i in range(len(b64))]
        diffs = [rng.standard_normal(t.shape).astype(np.float32) for t in t64]
        for layer, bottom, top in (made[np.float64], made[np.float32]):
            for t, g in zip(top, diffs):
                t.diff = g
            layer.backward(top, propagate_down, bottom)
        for i in self._gradient_bottoms(b64):
            np.testing.assert_allclose(b32[i].diff, b64[i].diff, err_msg="bottom %d diff" % i, **self.float32_tol)
        for j, (p32, p64) in enumerate(zip(l32.blobs, l64.blobs)):
            np.testing.assert_allclose(p32.diff, p64.diff, err_msg="param %d diff" % j, **self.float32_tol)

    def test_gradient(self):
        from .gradcheck import GradientChecker
        if self.gradient is None:
            return
        layer, bottom, top = self._make(np.float64)
        checker = GradientChecker(self.stepsize, self.threshold, self.seed, self.kink, self.kink_range)
        if self.gradient == "full":
            err = checker.check_gradient(layer, bottom, top)
        elif self.gradient == "exhaustive":
            err = checker.check_gradient_exhaustive(layer, bottom, top)
        elif self.gradient == "eltwise":
            err = checker.check_gradient_eltwise(layer, bottom, top)
        elif self.gradient == "directional":
            err = checker.check_gradient_directional(layer, bottom, top, n_directions=self.n_directions)
        else:
            raise ValueError("unknown gradient mode %r" % self.gradient)
        assert err <= self.threshold

    def test_no_gradient_bottoms(self):
        layer, bottom, top = self._make(np.float64)
        assert sorted(layer.no_gradient_bottoms) == sorted(self.no_gradient), layer.no_gradient_bottoms
        for i in range(len(bottom)):
            assert layer.allow_force_backward(i) == (self.gradient is not None and i not in self.no_gradient)
        self._forward(layer, bottom, top)
        for t in top:
            t.diff = np.ones(t.shape)
        if self.gradient is None:
            layer.backward(top, [False] * len(bottom), bottom)
            if bottom:
                self._raises("backward of %r" % layer, layer.backward, top, [True] * len(bottom), bottom)
            return
        for i, behaviour in self.no_gradient.items():
            only_i = [j == i for j in range(len(bottom))]
            bottom[i].diff[...] = 7.0
            if behaviour == "error":
                self._raises("a gradient for bottom %d of %r" % (i, layer), layer.backward, top, only_i, bottom)
            else:
                layer.backward(top, only_i, bottom)
                assert not np.any(bottom[i].diff), "bottom %d diff should be zero" % i

    def test_propagate_down(self):
        if self.gradient is None:
            return
        layer, bottom, top = self._make(np.float64)
        self._forward(layer, bottom, top)
        rng = np.random.default_rng(self.seed + 2)
        diffs = [rng.standard_normal(t.shape) for t in top]
        wanted = self._gradient_bottoms(bottom)

        def backward(propagate):
            for b in bottom:
                b.diff = np.full(b.shape, 7.0)
            for t, g in zip(top, diffs):
                t.diff = g
            layer.backward(top, propagate, bottom)
            return [b.diff.copy() for b in bottom]

        everything = backward([i in wanted for i in range(len(bottom))])
        for k in wanted:
            got = backward([i == k for i in range(len(bottom))])
            np.testing.assert_array_equal(got[k], everything[k], err_msg="bottom %d alone" % k)
            for i, d in enumerate(got):
                if i != k and not any(bottom[i].diff is t.diff for t in top):
                    assert np.all(d == 7.0), "bottom %d diff written though only bottom %d was asked for" % (i, k)

    def test_bad_bottom_shapes(self):
        for shapes in self.bad_bottom_shapes:
            self._raises("setup with bottoms %s" % (shapes,), self._make, np.float64, None, shapes)
        for shapes in list(self.bad_bottom_shapes) + list(self.bad_reshape_shapes):
            layer, bottom, top = self._make(np.float64)
            for b, shape in zip(bottom, shapes):
                b.reshape(shape)
            self._raises("reshape to bottoms %s" % (shapes,), layer.reshape, bottom, top)
        layer, bottom, top = self._make(np.float64)
        values = [b.data for b in bottom]
        cls = type(layer)
        exact, low, high = cls.exact_num_bottom, cls.min_num_bottom, cls.max_num_bottom
        if exact is not None or high is not None:
            extra = values + [values[0] if values else np.zeros((1,))]
            self._raises("one bottom too many", make_layer, self.snippet, extra)
        if values and (exact is not None or (low or 0) >= len(values)):
            self._raises("one bottom too few", make_layer, self.snippet, values[:-1])


#: Set to 1 to run a simulator check script on a real GPU instead (:func:`run_on_gpu`).
REAL_GPU_ENV = "CRFRNN_REAL_GPU"


def require_device_run():
    """The first call of a device check script: the numba.cuda simulator is on, or a run on a real GPU was
    asked for (``CRFRNN_REAL_GPU=1``, :func:`run_on_gpu`); otherwise exit saying how to run it."""
    import os
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and os.environ.get(REAL_GPU_ENV) != "1":
        raise SystemExit("run with NUMBA_ENABLE_CUDASIM=1 (the simulator), or %s=1 on a machine with a CUDA GPU"
                         % REAL_GPU_ENV)


def assert_declared(launches):
    """Fail unless every launch of a :func:`crfrnn_np.cuda_kernel.recording` has a declared signature: what
    runs on the device must be what the PTX test compiles for real GPUs."""
    from .cuda_kernel import undeclared
    bad = undeclared(launches)
    assert not bad, "launches with undeclared signatures (the PTX test does not compile them):\n" + "\n".join(bad)


def _run_check(args, env, ok, timeout):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable] + [str(a) for a in args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if ok is not None:
        assert ok in proc.stdout, proc.stdout + proc.stderr
    return proc.stdout


def run_under_simulator(args, ok=None, timeout=600):
    """Run ``python args...`` in a subprocess under the numba.cuda simulator; return its standard output.

    ``NUMBA_ENABLE_CUDASIM=1`` takes effect only if it is set before numba is first imported, hence the
    subprocess. The run must exit 0 and, when ``ok`` is given, print that line (so a script that silently
    checked nothing fails too).

    Parameters
    ----------
    args : list of str
        The arguments after the interpreter: a script path and its arguments, or ``-m module ...``.
    ok : str, optional
        Text that standard output must contain.
    timeout : float
        Seconds before the run counts as hung.
    """
    import os
    return _run_check(args, dict(os.environ, NUMBA_ENABLE_CUDASIM="1"), ok, timeout)


def run_on_gpu(args, ok=None, timeout=600):
    """:func:`run_under_simulator`'s check on the real GPU: the same script in a subprocess without the
    simulator, with ``CRFRNN_REAL_GPU=1`` (what :func:`require_device_run` accepts instead)."""
    import os
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env[REAL_GPU_ENV] = "1"
    return _run_check(args, env, ok, timeout)


#: θα, θβ, θγ of the small MultiStageMeanfield test nets (:func:`meanfield_snippet`).
MEANFIELD_THETAS = (8.0, 30.0, 3.0)

#: An Input layer with the three bottoms of a MultiStageMeanfield layer (unary, Q0, image), each (2, 3, 6, 5);
#: append :func:`meanfield_snippet` to make a net.
MEANFIELD_NET_TEXT = """
name: "meanfield"
force_backward: true
layer { name: "input" type: "Input" top: "unary" top: "Q0" top: "data"
  input_param { shape { dim: 2 dim: 3 dim: 6 dim: 5 } shape { dim: 2 dim: 3 dim: 6 dim: 5 }
                shape { dim: 2 dim: 3 dim: 6 dim: 5 } } }
"""


def meanfield_snippet(T, extra="", engine=None):
    """``layer { ... }`` text of a MultiStageMeanfield layer ``inference1`` (bottoms unary, Q0, data; top pred)
    with T iterations, :data:`MEANFIELD_THETAS`, and ``extra`` (and ``engine``) inside its param."""
    if engine:
        extra = "%s engine: %s" % (extra, engine)
    return ('layer { name: "inference1" type: "MultiStageMeanfield" bottom: "unary" bottom: "Q0" '
            'bottom: "data" top: "pred" multi_stage_meanfield_param { num_iterations: %d theta_alpha: %g '
            'theta_beta: %g theta_gamma: %g %s } }' % ((T,) + MEANFIELD_THETAS + (extra,)))
