"""MultiStageMeanfield with ``untied: true`` (each iteration its own W_s, W_b, μ; 3T blobs in iteration order).

Independent references: the tied layer (equal per-iteration parameters must give the same forward, and its
parameter diffs must be the sums of the untied ones), the sub-net's own filter outputs combined with NumPy
(Φ_t = μ_t (W_s^t S_t + W_b^t B_t) with iteration t's matrices), and central finite differences in float64.
"""
import numpy as np
import pytest

from crfrnn_np import Net, proto
from crfrnn_np.errors import NetError, WeightsError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import MEANFIELD_NET_TEXT as NET_TEXT
from crfrnn_np.testing import make_layer
from crfrnn_np.tools.unroll import unroll_net

T = 3


def snippet(untied=True, engine="STEPS", params=""):
    return ('layer { name: "inference1" type: "MultiStageMeanfield" bottom: "unary" bottom: "Q0" '
            'bottom: "data" top: "pred" %s multi_stage_meanfield_param { num_iterations: %d theta_alpha: 8 '
            'theta_beta: 30 theta_gamma: 3 spatial_filter_weights_str: "2 3 4" engine: %s untied: %s } }'
            % (params, T, engine, "true" if untied else "false"))


def inputs(rng, n=2):
    unary = 2.0 * rng.standard_normal((n, 3, 6, 5))
    return unary, unary + rng.standard_normal(unary.shape), rng.uniform(-110.0, 140.0, (n, 3, 6, 5))


def per_iteration_values(rng):
    """3T generic matrices: the Potts initialisation plus noise, different in every iteration."""
    start = [np.diag([2.0, 3.0, 4.0]), 5.0 * np.eye(3), -np.eye(3)]
    return [start[i % 3] + 0.3 * rng.standard_normal((3, 3)) for i in range(3 * T)]


def set_params(blobs, values):
    for blob, value in zip(blobs, values):
        blob.data[0, 0] = value


def test_blobs_in_iteration_order_start_like_tied():
    """3T blobs, blobs[3(t-1)+k] = the tied layer's blob k at the start; DEFAULT runs STEPS."""
    net_param = proto.parse(NET_TEXT + snippet(engine="DEFAULT"))
    layer = Net(net_param).layer_dict["inference1"]
    tied = Net(proto.parse(NET_TEXT + snippet(untied=False))).params["inference1"]
    assert layer.engine == "STEPS" and layer.untied and len(layer.blobs) == 3 * T
    for t in range(1, T + 1):
        for k in range(3):
            assert layer.iteration_params(t)[k] is layer.blobs[3 * (t - 1) + k]
            np.testing.assert_array_equal(layer.blobs[3 * (t - 1) + k].data, tied[k].data)
    np.testing.assert_array_equal(tied[0].data[0, 0], np.diag([2.0, 3.0, 4.0]))


def test_fused_rejects_untied():
    bottoms = [np.zeros((1, 2, 4, 4))] * 2 + [np.zeros((1, 3, 4, 4))]
    with pytest.raises(NetError, match="layer 'inference1'.*FUSED does not run untied"):
        make_layer(snippet(engine="FUSED"), bottoms)


@pytest.mark.parametrize("phase", ["TEST", "TRAIN"])
def test_equal_iterations_equal_tied(rng, phase):
    """Untied with the same three matrices in every iteration is the tied layer: the same top and bottom
    diffs, and the tied parameter diff k is the sum over t of the untied diffs 3(t-1)+k."""
    tied = Net(proto.parse(NET_TEXT + snippet(untied=False)), phase=phase, dtype="float64")
    untied = Net(proto.parse(NET_TEXT + snippet()), phase=phase, dtype="float64")
    values = per_iteration_values(rng)[:3]
    set_params(tied.params["inference1"], values)
    set_params(untied.params["inference1"], values * T)
    unary, q0, image = inputs(rng)
    g = rng.standard_normal(unary.shape)
    outs, diffs = [], []
    for net in (tied, untied):
        outs.append(net.forward(unary=unary, Q0=q0, data=image)["pred"].copy())
        diffs.append({k: v.copy() for k, v in net.backward(pred=g).items()})
    np.testing.assert_array_equal(outs[1], outs[0])
    np.testing.assert_array_equal(diffs[1]["unary"], diffs[0]["unary"])
    np.testing.assert_array_equal(diffs[1]["Q0"], diffs[0]["Q0"])
    for k, blob in enumerate(tied.params["inference1"]):
        summed = sum(untied.params["inference1"][3 * t + k].diff for t in range(T))
        assert np.abs(blob.diff).max() > 1e-3
        np.testing.assert_allclose(summed, blob.diff, rtol=0, atol=1e-12 * np.abs(blob.diff).max())


def test_each_iteration_uses_its_own_matrices(rng):
    """Φ_t in the sub-net equals μ_t (W_s^t S_t + W_b^t B_t) from the sub-net's filter outputs and iteration t's
    matrices (NumPy), and the top differs from the tied layer run with iteration 1's matrices."""
    unary, q0, image = inputs(rng, 1)
    layer, bottom, top = make_layer(snippet(), [unary, q0, image], phase="TRAIN")
    values = per_iteration_values(rng)
    set_params(layer.blobs, values)
    layer.forward(bottom, top)
    blobs = layer.steps_net.blobs
    for t in range(1, T + 1):
        w_s, w_b, mu = values[3 * (t - 1):3 * t]
        s = blobs["inference1_iter%d_spatial" % t].data[0].reshape(3, -1)
        b = blobs["inference1_iter%d_bilateral" % t].data[0].reshape(3, -1)
        expected = mu @ (w_s @ s + w_b @ b)
        np.testing.assert_allclose(blobs["inference1_iter%d_pairwise" % t].data[0].reshape(3, -1), expected,
                                   rtol=0, atol=1e-12 * np.abs(expected).max())
    tied, tb, tt = make_layer(snippet(untied=False), [unary, q0, image], phase="TRAIN")
    set_params(tied.blobs, values[:3])
    tied.forward(tb, tt)
    assert np.abs(tt[0].data - top[0].data).max() > 1e-2


@pytest.mark.parametrize("check_bottom", [0, 1])
def test_gradients_float64(rng, check_bottom):
    """Directional central differences through T = 3 untied iterations: a bottom and all 3T parameters
    (step 1e-6 in float64, as for the tied layer)."""
    unary, q0, image = inputs(rng)
    layer, bottom, top = make_layer(snippet(), [unary, q0, image], phase="TRAIN")
    set_params(layer.blobs, per_iteration_values(rng))
    checker = GradientChecker(stepsize=1e-6, threshold=1e-6)
    assert checker.check_gradient_directional(layer, bottom, top, check_bottom=check_bottom, n_directions=4) <= 1e-6


def test_unrolled_untied_net_is_the_layer(rng):
    """``crfrnn unroll`` of an untied layer: 3T unshared Compatibility blobs (lr_mult by role), the same
    forward, bottom diffs and parameter diffs."""
    net_param = proto.parse(NET_TEXT + snippet(params="param { lr_mult: 10 } param { lr_mult: 10 } "
                                                      "param { lr_mult: 1 }"))
    layer_net = Net(net_param, dtype="float64")
    unrolled = Net(unroll_net(net_param), dtype="float64")
    assert not any(layer.type == "MultiStageMeanfield" for layer in unrolled.layers)
    assert layer_net.params_lr == unrolled.params_lr == [10.0, 10.0, 1.0] * T
    values = per_iteration_values(rng)
    set_params(layer_net.params["inference1"], values)
    set_params(unrolled.learnable_params, values)
    unary, q0, image = inputs(rng)
    g = rng.standard_normal(unary.shape)
    results = []
    for net, params in ((layer_net, layer_net.params["inference1"]), (unrolled, unrolled.learnable_params)):
        out = net.forward(unary=unary, Q0=q0, data=image)["pred"].copy()
        d = net.backward(pred=g)
        results.append([out, d["unary"].copy(), d["Q0"].copy()] + [p.diff.copy() for p in params])
    for a, b in zip(results[1], results[0]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("suffix", [".caffemodel", ".h5"])
@pytest.mark.parametrize("direction", ["layer-to-layer", "layer-to-unrolled", "unrolled-to-layer"])
def test_weights_round_trip(rng, tmp_path, suffix, direction):
    """Saved untied parameters (3T different matrices) load back in iteration order into the layer and into
    its unrolled net; the outputs agree."""
    net_param = proto.parse(NET_TEXT + snippet())
    make = {"layer": lambda: Net(net_param, phase="TEST", dtype="float64"),
            "unrolled": lambda: Net(unroll_net(net_param), phase="TEST", dtype="float64")}
    first, _, second = direction.split("-")
    source, target = make[first](), make[second]()
    params = lambda net: net.params["inference1"] if "inference1" in net.params else net.learnable_params  # noqa
    values = per_iteration_values(rng)
    set_params(params(source), values)
    path = tmp_path / ("untied" + suffix)
    source.save(str(path))
    target.copy_from(str(path))
    for blob, value in zip(params(target), values):
        np.testing.assert_array_equal(blob.data[0, 0], value)
    unary, q0, image = inputs(rng)
    expected = source.forward(unary=unary, Q0=q0, data=image)["pred"].copy()
    np.testing.assert_allclose(target.forward(unary=unary, Q0=q0, data=image)["pred"], expected, rtol=0,
                               atol=1e-12)


def test_tied_weights_do_not_load_into_untied(tmp_path):
    """A tied file holds 3 blobs for the layer: a one-line error naming the layer and both counts."""
    tied = Net(proto.parse(NET_TEXT + snippet(untied=False)), phase="TEST")
    path = tmp_path / "tied.caffemodel"
    tied.save(str(path))
    untied = Net(proto.parse(NET_TEXT + snippet()), phase="TEST")
    with pytest.raises(WeightsError, match="layer 'inference1'.*the file has 3, the net has 9") as info:
        untied.copy_from(str(path))
    assert "\n" not in str(info.value)


def test_trace_refuses_untied():
    """``crfrnn trace`` records one CRF's free energy, so an untied layer is a one-line error."""
    from crfrnn_np.trace import trace_layer
    net = Net(proto.parse(NET_TEXT + snippet()), phase="TEST")
    with pytest.raises(NetError, match="layer 'inference1' is untied"):
        trace_layer(net, "inference1")
