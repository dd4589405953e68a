"""``crfrnn evaluate --predictions DIR --ground-truth DIR --num-classes C [--ignore-label 255] [--json F]``.

Pairs the label maps of the two folders by file stem (``2007_000033.png`` with ``2007_000033.png``; the
extensions may differ), sums one confusion matrix over every pair (:mod:`crfrnn_np.metrics`: rows ground
truth, columns prediction, ignore-label pixels skipped) and prints IoU and accuracy per class (VOC's class
names when C = 21), the mean IoU over the classes present, the pixel accuracy and the mean class accuracy.
``--json`` also writes ``{"mean_iou", "per_class_iou" (null for absent classes), "pixel_accuracy",
"mean_class_accuracy", "classes", "confusion", "images"}``.

Label maps are read as class indices: a palette PNG's indices (what ``crfrnn segment`` and VOC's
``SegmentationClass`` PNGs hold), or a grey image's values. A prediction without ground truth, ground truth
without a prediction, and a pair of different sizes are errors naming the file.
"""
import json
import os

import numpy as np

#: Files taken as label maps (lossless formats only: a JPEG's class indices would not survive).
LABEL_EXTENSIONS = (".png", ".bmp", ".gif", ".pgm", ".tif", ".tiff")


def add_parser(sub):
    p = sub.add_parser("evaluate", help="score a folder of label maps against ground truth (one confusion matrix)")
    p.add_argument("--predictions", required=True, help="folder of predicted label maps (palette or grey PNGs)")
    p.add_argument("--ground-truth", required=True, help="folder of ground-truth label maps, same file stems")
    p.add_argument("--num-classes", type=int, required=True, help="C: labels are 0..C-1 (21 for PASCAL VOC)")
    p.add_argument("--ignore-label", type=int, default=255,
                   help="ground-truth label of pixels not scored (default 255, VOC's boundaries)")
    p.add_argument("--json", metavar="FILE", help="also write the scores and the confusion matrix as JSON")
    return p


def label_files(folder, what):
    """Stem -> path of the label maps in ``folder`` (hidden files and other extensions left out).

    Parameters
    ----------
    folder : str
    what : str
        What the folder holds ("predictions", "ground truth"), for messages.

    Returns
    -------
    dict of str -> str, in sorted stem order
    """
    from crfrnn_np.errors import Error
    if not os.path.isdir(folder):
        raise Error("%s: %s folder does not exist" % (folder, what))
    files = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        stem, ext = os.path.splitext(name)
        if name.startswith(".") or ext.lower() not in LABEL_EXTENSIONS or not os.path.isfile(path):
            continue
        if stem in files:
            raise Error("%s: a second %s file for '%s' (also %s)" % (path, what, stem, files[stem]))
        files[stem] = path
    return files


def _and_more(names):
    return "" if len(names) == 1 else " (and %d more)" % (len(names) - 1)


def pair_by_stem(predictions, ground_truth):
    """``[(stem, prediction path, ground-truth path)]`` for every stem, sorted; an error for any unpaired file.

    Raises
    ------
    crfrnn_np.Error
        Naming the first prediction without ground truth, or the first ground truth without a prediction.
    """
    from crfrnn_np.errors import Error
    preds = label_files(predictions, "predictions")
    truths = label_files(ground_truth, "ground truth")
    if not preds:
        raise Error("%s: no label maps (%s) in this folder" % (predictions, " ".join(LABEL_EXTENSIONS)))
    missing = [stem for stem in preds if stem not in truths]
    if missing:
        raise Error("%s: no ground truth for this prediction in %s%s" % (preds[missing[0]], ground_truth,
                                                                        _and_more(missing)))
    extra = [stem for stem in truths if stem not in preds]
    if extra:
        raise Error("%s: no prediction for this ground truth in %s%s" % (truths[extra[0]], predictions,
                                                                        _and_more(extra)))
    return [(stem, preds[stem], truths[stem]) for stem in preds]


def confusion_of_pairs(pairs, num_classes, ignore_label=255):
    """The confusion matrix summed over ``[(stem, prediction path, ground-truth path)]``.

    Returns
    -------
    ndarray, shape (C, C), int64: rows ground truth, columns prediction
    """
    from crfrnn_np import image, metrics
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    for _, pred_path, truth_path in pairs:
        pred = image.read_label_png(pred_path)
        truth = image.read_label_png(truth_path)
        total += metrics.confusion(pred, truth, num_classes, ignore_label, where=pred_path)
    return total


def write_json(path, matrix, images):
    """Write :func:`crfrnn_np.metrics.report` as JSON (atomic replace)."""
    from crfrnn_np import atomic, metrics
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    record = metrics.report(matrix, images)
    rows = record.pop("confusion")                        # one line per ground-truth class, not per number
    text = (json.dumps(record, indent=1)[:-2] + ',\n "confusion": [\n  '
            + ",\n  ".join(json.dumps(row) for row in rows) + "\n ]\n}\n")
    atomic.write_bytes(path, text.encode("utf-8"))


def check_classes(num_classes, ignore_label):
    from crfrnn_np.errors import Error
    if not 1 <= num_classes <= 256:
        raise Error("--num-classes must be in 1..256 (labels are stored as bytes), got %d" % num_classes)
    if ignore_label is not None and 0 <= ignore_label < num_classes:
        raise Error("--ignore-label %d is one of the %d classes" % (ignore_label, num_classes))


def run(args):
    from crfrnn_np import metrics
    check_classes(args.num_classes, args.ignore_label)
    pairs = pair_by_stem(args.predictions, args.ground_truth)
    matrix = confusion_of_pairs(pairs, args.num_classes, args.ignore_label)
    for line in metrics.format_table(matrix, len(pairs)):
        print(line)
    if args.json:
        write_json(args.json, matrix, len(pairs))
        print("wrote %s" % args.json)
    return 0
