"""SoftmaxWithLoss: Caffe's test_softmax_with_loss_layer.cpp and the normalization rules (spec caffe.md §1.3,
§3.5, §4.7, §8.5)."""
import math

import numpy as np
import pytest

from crfrnn_np.errors import NetError, ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer

FLT_MIN = 1.1754944e-38


def loss_layer(scores, labels, extra="", tops=("loss",), dtype=np.float64):
    top = " ".join('top: "%s"' % t for t in tops)
    return make_layer('name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" %s %s' % (top, extra),
                      [scores.copy(), labels.copy()], dtype=dtype)


@pytest.fixture
def data(rng):
    scores = rng.standard_normal((10, 5, 2, 3)) * 10
    labels = rng.integers(0, 5, (10, 1, 2, 3)).astype(np.float64)
    return scores, labels


def forward_loss(scores, labels, extra="", dtype=np.float64):
    layer, bottom, top = loss_layer(scores, labels, extra, dtype=dtype)
    layer.forward(bottom, top)
    return float(top[0].data)


def naive_terms(scores, labels, ignore=None):
    """Per-position -log p[label] with loops (None at ignored positions), in float64."""
    N, C, H, W = scores.shape
    terms = []
    for n in range(N):
        for h in range(H):
            for w in range(W):
                label = int(labels[n, 0, h, w])
                if ignore is not None and label == ignore:
                    continue
                col = [float(scores[n, c, h, w]) for c in range(C)]
                m = max(col)
                z = sum(math.exp(v - m) for v in col)
                p = math.exp(col[label] - m) / z
                terms.append(-math.log(max(p, FLT_MIN)))
    return terms


def test_forward_ignore_label(data):
    scores, labels = data
    full = forward_loss(scores, labels, "loss_param { normalize: false }")
    accum = sum(forward_loss(scores, labels, "loss_param { normalize: false ignore_label: %d }" % k)
                for k in range(5))
    assert abs(4 * full - accum) < 1e-4


@pytest.mark.parametrize("param,normalizer", [
    ("", "valid"),
    ("loss_param { normalization: VALID }", "valid"),
    ("loss_param { normalization: FULL }", "full"),
    ("loss_param { normalization: BATCH_SIZE }", "batch"),
    ("loss_param { normalization: NONE }", "none"),
    ("loss_param { normalize: true }", "valid"),
    ("loss_param { normalize: false }", "batch"),
    ("loss_param { normalize: false normalization: FULL }", "full"),
])
@pytest.mark.parametrize("ignore", [None, 2])
def test_normalization_modes(data, param, normalizer, ignore):
    scores, labels = data
    if ignore is not None:
        param = (param[:-1] if param else "loss_param { ") + " ignore_label: %d }" % ignore
    terms = naive_terms(scores, labels, ignore)
    n = {"valid": len(terms), "full": 10 * 2 * 3, "batch": 10, "none": 1}[normalizer]
    expected = sum(terms) / n
    assert forward_loss(scores, labels, param) == pytest.approx(expected, rel=1e-12)


def test_all_ignored_gives_zero_loss_and_gradient():
    scores = np.array([[1.0, 2.0], [3.0, -1.0]])
    labels = np.array([1.0, 1.0])
    layer, bottom, top = loss_layer(scores, labels, "loss_param { ignore_label: 1 }")
    layer.forward(bottom, top)
    assert float(top[0].data) == 0.0
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flt_min_clamp(dtype):
    # p(label) = exp(-200) / (1 + exp(-200)) is below FLT_MIN (0 in float32): the loss is -log(FLT_MIN)
    layer, bottom, top = loss_layer(np.array([[0.0, -200.0]]), np.array([1.0]), dtype=dtype)
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(-math.log(FLT_MIN), rel=1e-6)


def test_backward_by_hand():
    scores = np.array([[0.0, math.log(3.0)], [0.0, 0.0], [1.0, 1.0]])
    labels = np.array([1.0, 0.0, 7.0])
    layer, bottom, top = loss_layer(scores, labels, "loss_weight: 3 loss_param { ignore_label: 7 }")
    assert layer.loss_weights == [3.0]
    layer.forward(bottom, top)
    # p = [0.25, 0.75], [0.5, 0.5]; two valid positions
    assert float(top[0].data) == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2, rel=1e-14)
    layer.backward(top, [True, False], bottom)
    expected = np.array([[0.25, -0.25], [-0.5, 0.5], [0.0, 0.0]]) * 3 / 2
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-14)


def test_loss_weight_counts_in_forward(data):
    scores, labels = data
    layer, bottom, top = loss_layer(scores, labels, "loss_weight: 3")
    weighted = layer.forward(bottom, top)
    assert weighted == pytest.approx(3 * float(top[0].data), rel=1e-14)


def test_second_top_is_probabilities(data):
    scores, labels = data
    layer, bottom, top = loss_layer(scores, labels, tops=("loss", "prob"))
    assert layer.loss_weights == [1.0, 0.0]
    layer.forward(bottom, top)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(top[1].data, e / e.sum(axis=1, keepdims=True), rtol=1e-12)


def test_label_gradient_is_an_error(data):
    layer, bottom, top = loss_layer(*data)
    layer.forward(bottom, top)
    with pytest.raises(NetError, match="label"):
        layer.backward(top, [True, True], bottom)
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)
    assert layer.is_loss


def test_shape_errors(data):
    scores, labels = data
    with pytest.raises(ShapeError, match="number of labels"):
        loss_layer(scores, labels[:, :, :1])
    with pytest.raises(NetError, match="outside 0..4"):
        bad = labels.copy()
        bad[0, 0, 0, 0] = 5
        forward_loss(scores, bad)


def test_other_axis(rng):
    scores = rng.standard_normal((3, 4, 6))
    labels = rng.integers(0, 6, (3, 4)).astype(np.float64)
    loss = forward_loss(scores, labels, "softmax_param { axis: 2 }")
    terms = []
    for i in range(3):
        for j in range(4):
            row = scores[i, j]
            terms.append(-(row[int(labels[i, j])] - math.log(np.exp(row).sum())))
    assert loss == pytest.approx(sum(terms) / 12, rel=1e-12)


@pytest.mark.parametrize("extra", ["loss_weight: 3", "loss_param { ignore_label: 0 }",
                                   "loss_param { normalize: false }"])
def test_gradient(data, extra):
    layer, bottom, top = loss_layer(*data, extra)
    GradientChecker(1e-2, 1e-2, 1701).check_gradient_exhaustive(layer, bottom, top, check_bottom=0)


class TestSoftmaxWithLossBattery(LayerTestCase):
    """Loss over 2 x 2 positions of 3 classes; the labels (bottom 1) carry no gradient: asking is an error."""
    snippet = 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" }'
    bottom_shapes = [(2, 3, 2), (2, 2)]
    top_shapes = [()]
    no_gradient = {1: "error"}
    gradient = "exhaustive"
    bad_bottom_shapes = [[(2, 3, 2), (3, 2)], [(2, 3, 2), (2, 3)]]  # other batch; other label count

    def make_bottoms(self, rng):
        return [rng.standard_normal((2, 3, 2)), np.array([[0, 2], [1, 1]])]

    def expected_forward(self, bottoms):
        x, label = bottoms[0], bottoms[1].astype(int)
        log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
        picked = [log_p[n, label[n, k], k] for n in range(2) for k in range(2)]
        return [-np.mean(picked)]
