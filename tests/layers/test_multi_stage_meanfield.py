"""MultiStageMeanfield, both engines: parity with pydensecrf, float64 gradients through T iterations, STEPS ==
FUSED == the unrolled net, and the step layers being what STEPS runs.

Independent references: pydensecrf2's ``DenseCRF.inference(T)`` under the recipe of spec crfasrnn.md §3.8
(NORMALIZE_AFTER, DIAG_KERNEL compatibilities w_s and w_b, unary energy −U, features (x/θγ, y/θγ) and
(x/θα, y/θα, c/θβ) from the same float image), and central finite differences in float64.
"""
import numpy as np
import pytest

from crfrnn_np import Net, proto
from crfrnn_np.errors import NetError, ParseError, ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import MEANFIELD_NET_TEXT as NET_TEXT
from crfrnn_np.layers.multi_stage_meanfield import resolve_engine
from crfrnn_np.testing import MEANFIELD_THETAS, LayerTestCase, make_layer, meanfield_snippet, parse_layer
from crfrnn_np.testing import run_under_simulator
from crfrnn_np.tools.unroll import unroll_net

THETA_ALPHA, THETA_BETA, THETA_GAMMA = MEANFIELD_THETAS


ENGINES = ["STEPS", "FUSED"]


def random_inputs(rng, n, c, h, w):
    unary = 2.0 * rng.standard_normal((n, c, h, w))
    image = rng.uniform(-110.0, 140.0, (n, 3, h, w))
    return unary, image


def densecrf_marginals(unary, image, T, w_s=3.0, w_b=5.0):
    """pydensecrf2 inference(T) on one image: unary (C, H, W) logits, image (3, H, W). Returns (C, H*W)."""
    dcrf = pytest.importorskip("pydensecrf.densecrf")
    c, h, w = unary.shape
    crf = dcrf.DenseCRF(h * w, c)
    crf.setUnaryEnergy(np.ascontiguousarray(-unary.reshape(c, -1), dtype=np.float32))
    ys, xs = np.mgrid[:h, :w]
    spatial = np.stack([xs.ravel() / THETA_GAMMA, ys.ravel() / THETA_GAMMA])
    colour = image.astype(np.float32).reshape(3, -1) / np.float32(THETA_BETA)
    bilateral = np.concatenate([np.stack([xs.ravel() / THETA_ALPHA, ys.ravel() / THETA_ALPHA]), colour])
    for feats, weight in ((spatial, w_s), (bilateral, w_b)):
        crf.addPairwiseEnergy(np.ascontiguousarray(feats, dtype=np.float32), compat=weight,
                              kernel=dcrf.DIAG_KERNEL, normalization=dcrf.NORMALIZE_AFTER)
    return np.array(crf.inference(T))


def softmax(logits):
    e = np.exp(logits - logits.max(axis=0))
    return e / e.sum(axis=0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("T", [5, 10])
@pytest.mark.parametrize("phase", ["TEST", "TRAIN"])
def test_matches_pydensecrf_inference(rng, T, phase, engine):
    n, c, h, w = 2, 4, 16, 12                 # H*W % 4 == 0: no lattice padding vertices (spec §3.4)
    unary, image = random_inputs(rng, n, c, h, w)
    layer, bottom, top = make_layer(meanfield_snippet(T, engine=engine), [unary, unary, image], dtype=np.float32,
                                    phase=phase)
    assert layer.engine == engine
    layer.forward(bottom, top)
    for i in range(n):
        expected = densecrf_marginals(unary[i], image[i], T)
        got = softmax(top[0].data[i].reshape(c, -1).astype(np.float64))
        np.testing.assert_allclose(got, expected, atol=2e-6)


def test_weights_from_prototxt_strings(rng):
    c = 3
    layer, _, _ = make_layer(meanfield_snippet(2, 'spatial_filter_weights_str: "1 2 3" '
                                                  'bilateral_filter_weight: 4'),
                             [np.zeros((1, c, 4, 4))] * 2 + [np.zeros((1, 3, 4, 4))])
    np.testing.assert_array_equal(layer.blobs[0].data[0, 0], np.diag([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(layer.blobs[1].data[0, 0], 4.0 * np.eye(c))
    np.testing.assert_array_equal(layer.blobs[2].data[0, 0], -np.eye(c))
    default, _, _ = make_layer(meanfield_snippet(2), [np.zeros((1, c, 4, 4))] * 2 + [np.zeros((1, 3, 4, 4))])
    np.testing.assert_array_equal(default.blobs[0].data[0, 0], 3.0 * np.eye(c))
    np.testing.assert_array_equal(default.blobs[1].data[0, 0], 5.0 * np.eye(c))


def test_rejects_one_iteration():
    with pytest.raises(NetError, match="num_iterations"):
        make_layer(meanfield_snippet(1), [np.zeros((1, 2, 4, 4))] * 2 + [np.zeros((1, 3, 4, 4))])


def test_rejects_mismatched_q0():
    with pytest.raises(ShapeError):
        make_layer(meanfield_snippet(2), [np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 4, 4))])


@pytest.mark.parametrize("engine", ENGINES)
def test_batch_is_image_by_image(rng, engine):
    unary, image = random_inputs(rng, 3, 3, 6, 5)
    layer, bottom, top = make_layer(meanfield_snippet(3, engine=engine), [unary, unary, image], phase="TEST")
    layer.forward(bottom, top)
    batch = top[0].data.copy()
    for i in range(3):
        one, b1, t1 = make_layer(meanfield_snippet(3, engine=engine),
                                 [unary[i:i + 1], unary[i:i + 1], image[i:i + 1]], phase="TEST")
        one.forward(b1, t1)
        np.testing.assert_allclose(batch[i], t1[0].data[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_any_size_and_reshape(rng, engine):
    unary, image = random_inputs(rng, 1, 3, 6, 5)
    layer, bottom, top = make_layer(meanfield_snippet(2, engine=engine), [unary, unary, image], phase="TEST")
    layer.forward(bottom, top)
    unary2, image2 = random_inputs(rng, 1, 3, 7, 9)
    for blob, value in zip(bottom, (unary2, unary2, image2)):
        blob.reshape(value.shape)
        blob.data = value
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    fresh, b2, t2 = make_layer(meanfield_snippet(2, engine=engine), [unary2, unary2, image2], phase="TEST")
    fresh.forward(b2, t2)
    assert top[0].shape == (1, 3, 7, 9)
    np.testing.assert_allclose(top[0].data, t2[0].data, rtol=0, atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_lean_test_phase_equals_train_phase(rng, engine):
    unary, image = random_inputs(rng, 2, 3, 6, 6)
    q0 = unary + rng.standard_normal(unary.shape)
    diff = rng.standard_normal(unary.shape)
    results = {}
    for phase in ("TEST", "TRAIN"):
        layer, bottom, top = make_layer(meanfield_snippet(3, engine=engine), [unary, q0, image], phase=phase)
        layer.forward(bottom, top)
        top[0].diff = diff
        layer.backward(top, [True, True, False], bottom)
        results[phase] = (top[0].data.copy(), bottom[0].diff.copy(), bottom[1].diff.copy(),
                          [b.diff.copy() for b in layer.blobs])
    test, train = results["TEST"], results["TRAIN"]
    for a, b in zip(test[:3], train[:3]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(test[3], train[3]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("engine", ENGINES)
def test_one_bilateral_lattice_per_image(rng, engine):
    unary, image = random_inputs(rng, 2, 3, 6, 6)
    layer, bottom, top = make_layer(meanfield_snippet(4, engine=engine), [unary, unary, image], phase="TRAIN")
    layer.forward(bottom, top)
    top[0].diff = np.ones(top[0].shape)
    layer.backward(top, [True, True, False], bottom)
    assert layer.cache.builds == 1 + 2          # one spatial lattice + one bilateral lattice per image


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("check_bottom", [0, 1])
def test_gradients_float64(rng, check_bottom, engine):
    """Directional central differences through T = 3 iterations, unary or Q0 plus all three parameters.

    Step 1e-6 in float64: truncation error O(h²) ~1e-12 and rounding ~1e-16·|E|/h stay far below the
    1e-6 relative threshold (a step of 1e-4 already shows O(h²) errors of a few 1e-6 on |⟨∇E, r⟩| ~ 300).
    """
    unary, image = random_inputs(rng, 2, 3, 5, 4)
    q0 = unary + rng.standard_normal(unary.shape)
    layer, bottom, top = make_layer(meanfield_snippet(3, engine=engine), [unary, q0, image], phase="TRAIN")
    for blob in layer.blobs:                      # off the Potts initialisation: a generic point
        blob.data[...] += 0.3 * rng.standard_normal(blob.shape)
    checker = GradientChecker(stepsize=1e-6, threshold=1e-6)
    err = checker.check_gradient_directional(layer, bottom, top, check_bottom=check_bottom, n_directions=4)
    assert err <= 1e-6


def _nets(phase, dtype, extra=""):
    """The layer with each engine and its unrolled net, sharing one parameter set."""
    nets = {engine: Net(proto.parse(NET_TEXT + meanfield_snippet(4, extra, engine)), phase=phase, dtype=dtype)
            for engine in ENGINES}
    nets["unrolled"] = Net(unroll_net(proto.parse(NET_TEXT + meanfield_snippet(4, extra))), phase=phase,
                           dtype=dtype)
    return nets


def _params(net):
    return net.params["inference1"] if "inference1" in net.params else net.learnable_params


# float32 tolerances: the FUSED engine sums in another order (compatibility on the vertices, vectorised
# softmax with a float32 exp), so the engines differ by float32 rounding amplified through T = 4 iterations
@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-10), (np.float32, 2e-4)], ids=["float64", "float32"])
@pytest.mark.parametrize("generic", [True, False], ids=["full-matrices", "diagonal-matrices"])
@pytest.mark.parametrize("phase", ["TEST", "TRAIN"])
def test_engines_agree(rng, phase, generic, dtype, atol):
    """STEPS, FUSED and the unrolled net (``crfrnn unroll``): forward, unary and Q0 diffs, parameter diffs,
    with generic parameters and with the diagonal initial ones (for which FUSED skips the vertex product)."""
    nets = _nets(phase, dtype, 'spatial_filter_weights_str: "2 3 4"')
    assert nets["STEPS"].layer_dict["inference1"].engine == "STEPS"
    assert nets["FUSED"].layer_dict["inference1"].engine == "FUSED"
    assert not any(layer.type == "MultiStageMeanfield" for layer in nets["unrolled"].layers)
    assert len(nets["unrolled"].learnable_params) == 3
    values = [blob.data[0, 0] + (0.2 * rng.standard_normal(blob.shape[2:]) if generic else 0)
              for blob in _params(nets["STEPS"])]
    unary, image = random_inputs(rng, 2, 3, 6, 5)
    q0 = unary + rng.standard_normal(unary.shape)
    g = rng.standard_normal(unary.shape)
    results = {}
    for key, net in nets.items():
        for blob, value in zip(_params(net), values):
            blob.data[0, 0] = value
        out = net.forward(unary=unary, Q0=q0, data=image)["pred"].astype(np.float64)
        diffs = net.backward(pred=g)
        results[key] = [out, diffs["unary"].astype(np.float64), diffs["Q0"].astype(np.float64)] + \
                       [blob.diff.astype(np.float64) for blob in _params(net)]
    scale = max(np.abs(r).max() for r in results["STEPS"])
    for key in ("FUSED", "unrolled"):
        for name, a, b in zip(["top", "unary diff", "Q0 diff", "dW_s", "dW_b", "dmu"], results[key],
                              results["STEPS"]):
            np.testing.assert_allclose(a, b, rtol=0, atol=atol * max(1.0, np.abs(b).max()),
                                       err_msg="%s against STEPS: %s (scale %g)" % (key, name, scale))
    # the same parameters give the same answer; a different W_s must change it (the test can fail)
    assert np.abs(results["STEPS"][0]).max() > 0


def test_steps_engine_runs_the_step_layers(rng, monkeypatch):
    """Edit a step layer (UnaryAdd: L = U − 2Φ, with its backward): STEPS and the unrolled net both change,
    FUSED does not. So the code a student reads in layers/unary_add.py is the code STEPS runs."""
    from crfrnn_np.layers.unary_add import UnaryAddLayer
    unary, image = random_inputs(rng, 1, 3, 6, 5)
    nets = _nets("TRAIN", np.float64)
    before = {key: net.forward(unary=unary, Q0=unary, data=image)["pred"].copy() for key, net in nets.items()}
    np.testing.assert_allclose(before["STEPS"], before["FUSED"], rtol=0, atol=1e-10)

    def forward_cpu(self, bottom, top):
        top[0].data[...] = bottom[0].data - 2.0 * bottom[1].data

    def backward_cpu(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff
        bottom[1].diff[...] = -2.0 * top[0].diff
    monkeypatch.setattr(UnaryAddLayer, "forward_cpu", forward_cpu)
    monkeypatch.setattr(UnaryAddLayer, "backward_cpu", backward_cpu)
    after = {key: net.forward(unary=unary, Q0=unary, data=image)["pred"].copy() for key, net in nets.items()}
    np.testing.assert_array_equal(after["FUSED"], before["FUSED"])
    assert np.abs(after["STEPS"] - before["STEPS"]).max() > 1e-3
    np.testing.assert_allclose(after["STEPS"], after["unrolled"], rtol=0, atol=1e-12)
    # and the edited backward is what STEPS differentiates: finite differences of the edited forward
    layer = nets["STEPS"].layer_dict["inference1"]
    bottom = nets["STEPS"].bottom_vecs[nets["STEPS"].layer_names.index("inference1")]
    top = nets["STEPS"].top_vecs[nets["STEPS"].layer_names.index("inference1")]
    checker = GradientChecker(stepsize=1e-6, threshold=1e-6)
    assert checker.check_gradient_directional(layer, bottom, top, check_bottom=0, n_directions=2) <= 1e-6


def test_steps_net_exposes_every_iteration(rng):
    """After a kept forward, the STEPS sub-net holds P_t, S_t, B_t, M_t, Φ_t and L_t of every iteration, and
    they satisfy Algorithm 1 (L_t = U − Φ_t, P_{t+1} = softmax(L_t))."""
    unary, image = random_inputs(rng, 1, 3, 6, 5)
    layer, bottom, top = make_layer(meanfield_snippet(3, engine="STEPS"), [unary, unary, image], phase="TRAIN")
    layer.forward(bottom, top)
    blobs = layer.steps_net.blobs
    for t in (1, 2, 3):
        pairwise = blobs["inference1_iter%d_pairwise" % t].data
        logits = top[0].data if t == 3 else blobs["inference1_iter%d_logits" % t].data
        np.testing.assert_allclose(logits, unary - pairwise, rtol=0, atol=1e-12)
        if t < 3:
            np.testing.assert_allclose(blobs["inference1_iter%d_prob" % (t + 1)].data[0], softmax(logits[0]),
                                       rtol=0, atol=1e-12)


def test_engine_choice_and_errors():
    bottoms = [np.zeros((1, 2, 4, 4))] * 2 + [np.zeros((1, 3, 4, 4))]
    assert make_layer(meanfield_snippet(2), bottoms)[0].engine == "FUSED"            # DEFAULT on the cpu
    assert make_layer(meanfield_snippet(2, engine="DEFAULT"), bottoms)[0].engine == "FUSED"
    assert make_layer(meanfield_snippet(2, engine="STEPS"), bottoms)[0].engine == "STEPS"
    assert make_layer(meanfield_snippet(2, engine="STEPS"), bottoms)[0].steps_net is not None
    # on the cuda backend (resolved without a device): FUSED when asked for, DEFAULT stays STEPS there
    assert resolve_engine(parse_layer(meanfield_snippet(2, engine="FUSED")), "cuda") == "FUSED"
    assert resolve_engine(parse_layer(meanfield_snippet(2)), "cuda") == "STEPS"
    with pytest.raises(NetError, match="FUSED runs on the cpu and cuda backends only"):
        resolve_engine(parse_layer(meanfield_snippet(2, engine="FUSED")), "reference")
    with pytest.raises(ParseError, match="SLOW"):
        make_layer(meanfield_snippet(2, engine="SLOW"), bottoms)


def test_published_prototxt_has_no_engine_field(anchor):
    """The published deploy net never sets the field (number 1001, unused by every CRF-RNN build): DEFAULT."""
    text = anchor("crfasrnn", "TVG_CRFRNN_new_deploy.prototxt").read_text()
    crf = [lp for lp in proto.parse(text).layer if lp.type == "MultiStageMeanfield"][0]
    assert crf.multi_stage_meanfield_param.engine == "DEFAULT"
    assert not crf.multi_stage_meanfield_param.has("engine")


@pytest.mark.parametrize("engine", ENGINES)
def test_gradients_caffe_shipped_configuration(rng, engine):
    """The reference's own test set-up (spec §2.5): batch 5, C = 3, 5 x 5, T = 2, θα = 5, θβ = 2, θγ = 3,
    unary and Q0 = log of random normalised probabilities, image = random integers 0..255; here in float64
    along random directions over each bottom and all three parameters (the reference checks only the
    bottoms, element by element, which costs thousands of forwards)."""
    def log_probs():
        p = rng.uniform(0.01, 1.0, (5, 3, 5, 5))
        return np.log(p / p.sum(axis=1, keepdims=True))
    image = rng.integers(0, 256, (5, 3, 5, 5)).astype(np.float64)
    snippet = ('layer { name: "crf" type: "MultiStageMeanfield" bottom: "u" bottom: "q" bottom: "d" top: "p" '
               'multi_stage_meanfield_param { num_iterations: 2 theta_alpha: 5 theta_beta: 2 theta_gamma: 3 '
               'engine: %s } }' % engine)
    layer, bottom, top = make_layer(snippet, [log_probs(), log_probs(), image])
    checker = GradientChecker(stepsize=1e-6, threshold=1e-6)
    for check_bottom in (0, 1):
        assert checker.check_gradient_directional(layer, bottom, top, check_bottom=check_bottom,
                                                  n_directions=6) <= 1e-6


@pytest.mark.parametrize("suffix", [".caffemodel", ".h5"])
@pytest.mark.parametrize("direction", ["fused-to-unrolled", "unrolled-to-fused"])
def test_weights_load_between_fused_and_unrolled(rng, tmp_path, suffix, direction):
    """A caffemodel or HDF5 file saved from the fused net loads into its unrolled net, and back: the same
    parameters, hence the same output."""
    fused_param = proto.parse(NET_TEXT + meanfield_snippet(3))
    fused = Net(fused_param, phase="TEST", dtype="float64")
    unrolled = Net(unroll_net(fused_param), phase="TEST", dtype="float64")
    source, target = (fused, unrolled) if direction == "fused-to-unrolled" else (unrolled, fused)
    trained = [m + 0.3 * rng.standard_normal(m.shape) for m in (3 * np.eye(3), 5 * np.eye(3), -np.eye(3))]
    params = fused.params["inference1"] if source is fused else source.learnable_params
    for blob, value in zip(params, trained):
        blob.data[...] = value[None, None]
    path = tmp_path / ("trained" + suffix)
    source.save(str(path))
    target.copy_from(str(path))
    loaded = target.params["inference1"] if target is fused else target.learnable_params
    for blob, value in zip(loaded, trained):
        np.testing.assert_array_equal(blob.data[0, 0], value)
    unary, image = random_inputs(rng, 2, 3, 6, 5)
    out_s = source.forward(unary=unary, Q0=unary, data=image)["pred"].copy()
    out_t = target.forward(unary=unary, Q0=unary, data=image)["pred"]
    np.testing.assert_allclose(out_t, out_s, rtol=0, atol=1e-12)


@pytest.mark.cudasim
def test_cuda_backend_runs_the_steps_under_the_simulator():
    """On the ``cuda`` backend DEFAULT is STEPS (the lattice filters on the device): equal to the CPU engines."""
    import pathlib
    run_under_simulator([pathlib.Path(__file__).resolve().parent / "cudasim_meanfield_check.py"],
                        ok="cudasim meanfield OK")


class TestMultiStageMeanfieldStepsBattery(LayerTestCase):
    """Two iterations on a 3 x 4 image of 3 classes; the image (bottom 2) carries no gradient."""
    snippet = meanfield_snippet(2, engine="STEPS").replace('name: "inference1"', 'name: "crf"')
    bottom_shapes = [(1, 3, 3, 4), (1, 3, 3, 4), (1, 3, 3, 4)]
    top_shapes = [(1, 3, 3, 4)]
    no_gradient = {2: "zero"}
    gradient = "directional"
    stepsize = 1e-6
    n_directions = 2
    float32_tol = {"rtol": 1e-4, "atol": 1e-4}
    bad_bottom_shapes = [[(1, 3, 3, 4), (1, 2, 3, 4), (1, 3, 3, 4)],   # unary and Q0 differ
                         [(1, 3, 3, 4), (1, 3, 3, 4), (1, 2, 3, 4)],   # image with 2 channels
                         [(1, 3, 3, 4), (1, 3, 3, 4), (1, 3, 4, 3)]]   # image of another size

    def make_bottoms(self, rng):
        unary, image = random_inputs(rng, 1, 3, 3, 4)
        return [unary, unary.copy(), image]


class TestMultiStageMeanfieldFusedBattery(TestMultiStageMeanfieldStepsBattery):
    snippet = meanfield_snippet(2, engine="FUSED").replace('name: "inference1"', 'name: "crf"')
