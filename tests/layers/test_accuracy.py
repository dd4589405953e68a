"""Accuracy: Caffe's test_accuracy_layer.cpp cases (spec caffe.md §3.11, §4.8)."""
import numpy as np
import pytest

from crfrnn_np.errors import NetError, ShapeError
from crfrnn_np.testing import LayerTestCase, make_layer


def accuracy(scores, labels, param="", tops=("acc",)):
    top = " ".join('top: "%s"' % t for t in tops)
    return make_layer('name: "acc" type: "Accuracy" bottom: "x" bottom: "label" %s accuracy_param { %s }'
                      % (top, param), [scores, labels], dtype=np.float32, phase="TEST")


def naive_correct(scores_row, label, top_k):
    """Correct when fewer than top_k classes score strictly higher than the true class (no ties here)."""
    higher = sum(1 for s in scores_row if s > scores_row[label])
    return higher < top_k


@pytest.fixture
def data(rng):
    return rng.standard_normal((100, 10)), rng.integers(0, 10, 100).astype(np.float64)


def run(layer, bottom, top):
    layer.forward(bottom, top)
    return [t.data.copy() for t in top]


@pytest.mark.parametrize("top_k", [1, 3])
def test_forward_top_k(data, top_k):
    scores, labels = data
    param = "top_k: %d" % top_k if top_k != 1 else ""
    acc, = run(*accuracy(scores, labels, param))
    expected = sum(naive_correct(scores[i], int(labels[i]), top_k) for i in range(100)) / 100
    assert acc.shape == ()
    assert abs(float(acc) - expected) < 1e-4


def test_ignore_label(data):
    scores, labels = data
    labels = labels.copy()
    labels[[2, 5, 32]] = -1
    acc, = run(*accuracy(scores, labels, "ignore_label: -1"))
    kept = [i for i in range(100) if i not in (2, 5, 32)]
    assert len(kept) == 97
    expected = sum(naive_correct(scores[i], int(labels[i]), 1) for i in kept) / 97
    assert abs(float(acc) - expected) < 1e-4


def test_spatial(rng):
    scores = rng.standard_normal((2, 10, 4, 5))
    labels = rng.integers(0, 10, (2, 1, 4, 5)).astype(np.float64)
    labels[0, 0, 1, 1] = 3
    acc, = run(*accuracy(scores, labels, "ignore_label: 3"))
    correct = counted = 0
    for n in range(2):
        for h in range(4):
            for w in range(5):
                label = int(labels[n, 0, h, w])
                if label == 3:
                    continue
                counted += 1
                correct += naive_correct(scores[n, :, h, w], label, 1)
    assert abs(float(acc) - correct / counted) < 1e-4


def test_per_class(rng):
    scores = rng.standard_normal((60, 4))
    labels = rng.integers(0, 3, 60).astype(np.float64)     # class 3 never occurs
    acc, per_class = run(*accuracy(scores, labels, tops=("acc", "per_class")))
    assert per_class.shape == (4,)
    for c in range(4):
        rows = [i for i in range(60) if labels[i] == c]
        expected = sum(naive_correct(scores[i], c, 1) for i in rows) / len(rows) if rows else 0.0
        assert abs(per_class[c] - expected) < 1e-6
    assert per_class[3] == 0.0


def test_ties_count_against_the_true_class():
    scores = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [2.0, 1.0, 2.0]])
    labels = np.array([0.0, 1.0, 2.0])
    acc, = run(*accuracy(scores, labels))
    assert float(acc) == 0.0
    acc, = run(*accuracy(scores, labels, "top_k: 2"))
    assert float(acc) == 1.0


def test_nothing_counted_gives_zero():
    acc, = run(*accuracy(np.ones((2, 3)), np.array([1.0, 1.0]), "ignore_label: 1"))
    assert float(acc) == 0.0


def test_no_backward_and_errors(data):
    scores, labels = data
    layer, bottom, top = accuracy(scores, labels)
    assert not layer.allow_force_backward(0) and not layer.allow_force_backward(1)
    with pytest.raises(NetError, match="no backward"):
        layer.backward(top, [True, False], bottom)
    with pytest.raises(NetError, match="top_k 11"):
        accuracy(scores, labels, "top_k: 11")
    with pytest.raises(ShapeError, match="number of labels"):
        accuracy(scores, labels[:50])


class TestAccuracyBattery(LayerTestCase):
    """top-2 accuracy and the per-class accuracies of 6 predictions over 4 classes."""
    snippet = ('layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" top: "per_class" '
               'accuracy_param { top_k: 2 } }')
    bottom_shapes = [(6, 4), (6,)]
    top_shapes = [(), (4,)]
    gradient = None
    bad_bottom_shapes = [[(6, 4), (5,)], [(6, 1), (6,)]]           # label count; top_k above the classes

    def make_bottoms(self, rng):
        return [rng.standard_normal((6, 4)), np.array([0, 1, 2, 3, 1, 2])]

    def expected_forward(self, bottoms):
        scores, labels = bottoms[0], bottoms[1].astype(int)
        hit = np.argsort(-scores, axis=1)[:, :2] == labels[:, None]
        per_class = [hit[labels == c].any(axis=1).mean() for c in range(4)]
        return [hit.any(axis=1).mean(), per_class]
