"""Segmentation scores over a whole data set, from one confusion matrix.

The confusion matrix ``M`` of a set of label maps is accumulated over every pixel of every image whose
ground-truth label is not the ignore label (255 in PASCAL VOC: object boundaries and "difficult" regions):
``M[g, p]`` counts the pixels of ground-truth class ``g`` predicted as ``p`` (rows ground truth, columns
prediction), computed as ``bincount(C * g + p)`` as FCN's ``score.py`` does. The scores come from the summed
matrix, never from an average of per-image scores (torchvision's and mmsegmentation's evaluations do the same):

* IoU of class c: ``M[c, c] / (sum_p M[c, p] + sum_g M[g, c] - M[c, c])``, undefined (None, NaN inside)
  for a class absent from both ground truth and predictions (union 0);
* mean IoU: the mean over the classes whose union is not empty;
* pixel accuracy: ``trace(M) / sum(M)``;
* mean class accuracy: the mean over classes present in the ground truth of ``M[c, c] / sum_p M[c, p]``.
"""
import numpy as np

from .errors import Error, ShapeError

#: The 21 PASCAL VOC 2012 classes, in label order (0 = background).
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")


def class_names(num_classes):
    """VOC's class names when ``num_classes`` is 21, else ``"class 0"``, ``"class 1"``, ..."""
    if num_classes == len(VOC_CLASSES):
        return list(VOC_CLASSES)
    return ["class %d" % c for c in range(num_classes)]


def confusion(pred, truth, num_classes, ignore_label=255, where="prediction"):
    """Confusion matrix of one label map.

    Parameters
    ----------
    pred, truth : ndarray, shape (H, W), integer labels
        Prediction and ground truth; ``truth == ignore_label`` pixels are skipped.
    num_classes : int
        C; every other label must lie in 0..C-1.
    ignore_label : int or None
    where : str
        The file named in error messages.

    Returns
    -------
    ndarray, shape (C, C), int64
        ``[g, p]`` = pixels of ground-truth class g predicted as p.

    Raises
    ------
    ShapeError
        The two maps differ in size.
    Error
        A label outside 0..C-1 (other than the ignore label in the ground truth).
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise ShapeError("%s: prediction is %s (H x W), its ground truth %s"
                         % (where, "x".join(map(str, pred.shape)), "x".join(map(str, truth.shape))))
    truth = truth.astype(np.int64).ravel()
    pred = pred.astype(np.int64).ravel()
    keep = truth != ignore_label if ignore_label is not None else slice(None)
    truth, pred = truth[keep], pred[keep]
    for name, values in (("ground truth", truth), ("prediction", pred)):
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.size:
            raise Error("%s: %s has label %d, outside 0..%d (--num-classes %d)%s"
                        % (where, name, bad[0], num_classes - 1, num_classes,
                           "" if name == "prediction" or ignore_label is None
                           else " and not the ignore label %d" % ignore_label))
    counts = np.bincount(num_classes * truth + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def scores(matrix):
    """The scores of a (summed) confusion matrix.

    Parameters
    ----------
    matrix : ndarray, shape (C, C), rows ground truth, columns prediction

    Returns
    -------
    dict
        ``per_class_iou`` (C,) float64 with NaN for classes absent from both (union 0), ``mean_iou`` (over the
        other classes), ``pixel_accuracy``, ``per_class_accuracy`` (C,) with NaN for classes absent from the
        ground truth, ``mean_class_accuracy``, ``pixels`` (counted pixels); means are NaN when nothing counts.
    """
    m = np.asarray(matrix, dtype=np.int64)
    inter = np.diag(m).astype(np.float64)
    truth_total = m.sum(axis=1)
    pred_total = m.sum(axis=0)
    union = truth_total + pred_total - np.diag(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, np.nan)
        class_acc = np.where(truth_total > 0, inter / truth_total, np.nan)
    pixels = int(m.sum())
    return {
        "per_class_iou": iou,
        "mean_iou": float(np.mean(iou[union > 0])) if (union > 0).any() else float("nan"),
        "pixel_accuracy": float(inter.sum() / pixels) if pixels else float("nan"),
        "per_class_accuracy": class_acc,
        "mean_class_accuracy": float(np.mean(class_acc[truth_total > 0])) if pixels else float("nan"),
        "pixels": pixels,
    }


def report(matrix, images):
    """The JSON record of a scored set: ``mean_iou``, ``per_class_iou`` (None for absent classes),
    ``pixel_accuracy``, ``mean_class_accuracy``, ``classes`` (names), ``confusion`` (list of rows) and
    ``images`` (how many were scored)."""
    s = scores(matrix)

    def number(x):
        return None if np.isnan(x) else float(x)

    return {
        "mean_iou": number(s["mean_iou"]),
        "per_class_iou": [number(x) for x in s["per_class_iou"]],
        "pixel_accuracy": number(s["pixel_accuracy"]),
        "mean_class_accuracy": number(s["mean_class_accuracy"]),
        "classes": class_names(len(s["per_class_iou"])),
        "confusion": np.asarray(matrix, dtype=np.int64).tolist(),
        "images": int(images),
    }


def format_table(matrix, images):
    """Lines of text: IoU and accuracy per class ("-" for absent classes), then the set's scores."""
    s = scores(matrix)
    names = class_names(len(s["per_class_iou"]))
    width = max(len(n) for n in names)
    lines = ["%-*s  %7s  %8s" % (width, "class", "IoU", "accuracy")]
    for name, iou, acc in zip(names, s["per_class_iou"], s["per_class_accuracy"]):
        lines.append("%-*s  %7s  %8s" % (width, name, "-" if np.isnan(iou) else "%.4f" % iou,
                                         "-" if np.isnan(acc) else "%.4f" % acc))
    present = int(np.sum(~np.isnan(s["per_class_iou"])))
    lines.append("mean IoU %.4f (over %d classes present), pixel accuracy %.4f, mean class accuracy %.4f; "
                 "%d images, %d pixels scored" % (s["mean_iou"], present, s["pixel_accuracy"],
                                                  s["mean_class_accuracy"], images, s["pixels"]))
    return lines
