"""crfrnn_np/metrics.py: the confusion matrix and the scores of a set, against counts done by hand."""
import math

import numpy as np
import pytest

from crfrnn_np import metrics
from crfrnn_np.errors import Error, ShapeError

# Two label maps, 5 classes. Class 2 is in the ground truth but never predicted, class 4 nowhere;
# one ground-truth pixel is 255 (its prediction, 0, is not counted).
TRUTH_A = [[0, 0, 1], [1, 255, 2]]
PRED_A = [[0, 1, 1], [1, 0, 0]]
TRUTH_B = [[0, 3], [3, 3]]
PRED_B = [[0, 3], [0, 3]]
# Counted by hand, pixel by pixel: A gives 0->0, 0->1, 1->1, 1->1, 2->0; B gives 0->0, 3->3, 3->0, 3->3.
HAND = np.array([[2, 1, 0, 0, 0],
                 [0, 2, 0, 0, 0],
                 [1, 0, 0, 0, 0],
                 [1, 0, 0, 2, 0],
                 [0, 0, 0, 0, 0]])


def test_confusion_counts_by_hand():
    total = metrics.confusion(PRED_A, TRUTH_A, 5) + metrics.confusion(PRED_B, TRUTH_B, 5)
    np.testing.assert_array_equal(total, HAND)
    assert total.dtype == np.int64


def test_scores_by_hand():
    s = metrics.scores(HAND)
    # IoU = TP / (row sum + column sum - TP): rows 3, 2, 1, 3, 0; columns 4, 3, 0, 2, 0
    expected = [2 / 5, 2 / 3, 0.0, 2 / 3, math.nan]
    np.testing.assert_allclose(s["per_class_iou"], expected, equal_nan=True)
    assert s["mean_iou"] == pytest.approx((2 / 5 + 2 / 3 + 0 + 2 / 3) / 4)       # class 4 absent: not counted
    assert s["pixel_accuracy"] == pytest.approx(6 / 9)
    assert s["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 + 0 + 2 / 3) / 4)
    assert s["pixels"] == 9


def test_one_matrix_is_not_the_mean_of_per_image_scores():
    per_image = [metrics.scores(metrics.confusion(p, t, 5))["mean_iou"] for p, t in ((PRED_A, TRUTH_A),
                                                                                   (PRED_B, TRUTH_B))]
    assert np.mean(per_image) != pytest.approx(metrics.scores(HAND)["mean_iou"])


def test_report_gives_none_for_absent_classes_and_names_voc_classes():
    record = metrics.report(HAND, images=2)
    assert record["per_class_iou"][4] is None and record["per_class_iou"][2] == 0.0
    assert record["confusion"] == HAND.tolist() and record["images"] == 2
    assert record["classes"] == ["class 0", "class 1", "class 2", "class 3", "class 4"]
    assert metrics.class_names(21)[15] == "person" and len(metrics.VOC_CLASSES) == 21
    empty = metrics.report(np.zeros((3, 3), np.int64), images=0)
    assert empty["mean_iou"] is None and empty["pixel_accuracy"] is None


def test_bad_maps_are_errors_naming_the_file():
    with pytest.raises(ShapeError, match="p.png: prediction is 2x3 .*ground truth 2x2"):
        metrics.confusion(PRED_A, TRUTH_B, 5, where="p.png")
    with pytest.raises(Error, match="g.png: ground truth has label 7, outside 0..4 .* not the ignore label 255"):
        metrics.confusion([[0, 1]], [[0, 7]], 5, where="g.png")
    with pytest.raises(Error, match="prediction has label 9"):
        metrics.confusion([[9, 1]], [[0, 255]], 5)
    # a prediction at an ignored pixel may be anything
    np.testing.assert_array_equal(metrics.confusion([[0, 9]], [[0, 255]], 5)[0, 0], 1)
