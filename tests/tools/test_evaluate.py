"""``crfrnn evaluate``: a hand-counted set through the command line, files paired by stem, errors."""
import json

import numpy as np
import pytest
from PIL import Image

from crfrnn_np import image
from crfrnn_np.tools.main import main

# The example of tests/crfrnn_np/test_metrics.py, as files: predictions as palette PNGs (what crfrnn segment
# writes), ground truth as grey PNGs. 5 classes; class 2 never predicted, class 4 nowhere, one pixel 255.
TRUTH = {"a": [[0, 0, 1], [1, 255, 2]], "b": [[0, 3], [3, 3]]}
PRED = {"a": [[0, 1, 1], [1, 0, 0]], "b": [[0, 3], [0, 3]]}


@pytest.fixture
def folders(tmp_path):
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir()
    truth.mkdir()
    for stem in TRUTH:
        image.write_label_png(np.array(PRED[stem]), pred / (stem + ".png"))
        Image.fromarray(np.array(TRUTH[stem], np.uint8), mode="L").save(truth / (stem + ".png"))
    (pred / "panels").mkdir()                            # a sub-folder and other files are left alone
    (pred / "notes.txt").write_text("x")
    return pred, truth


def evaluate(pred, truth, *extra):
    return main(["evaluate", "--predictions", str(pred), "--ground-truth", str(truth), "--num-classes", "5"]
                + list(extra))


def test_scores_of_a_hand_counted_set(folders, tmp_path, capsys):
    pred, truth = folders
    out = tmp_path / "scores.json"
    assert evaluate(pred, truth, "--json", str(out)) == 0
    record = json.loads(out.read_text())
    assert record["confusion"] == [[2, 1, 0, 0, 0], [0, 2, 0, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 2, 0],
                                   [0, 0, 0, 0, 0]]
    assert record["per_class_iou"] == pytest.approx([2 / 5, 2 / 3, 0.0, 2 / 3, None])
    assert record["mean_iou"] == pytest.approx((2 / 5 + 2 / 3 + 2 / 3) / 4)
    assert record["pixel_accuracy"] == pytest.approx(6 / 9)
    assert record["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 + 0 + 2 / 3) / 4)
    assert record["images"] == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[5].split() == ["class", "4", "-", "-"]
    assert lines[6].startswith("mean IoU 0.4333 (over 4 classes present), pixel accuracy 0.6667")


def test_voc_class_names_when_21_classes(folders, capsys):
    pred, truth = folders
    assert main(["evaluate", "--predictions", str(pred), "--ground-truth", str(truth), "--num-classes", "21"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[0] == "background" and lines[21].split() == ["tvmonitor", "-", "-"]


@pytest.mark.parametrize("case", ["missing truth", "extra truth", "size", "label", "empty", "no folder"])
def test_errors_name_the_file(case, folders, capsys):
    pred, truth = folders
    if case == "missing truth":
        (truth / "b.png").unlink()
        expect = "%s: no ground truth for this prediction" % (pred / "b.png")
    elif case == "extra truth":
        Image.fromarray(np.zeros((2, 2), np.uint8), mode="L").save(truth / "c.png")
        expect = "%s: no prediction for this ground truth" % (truth / "c.png")
    elif case == "size":
        Image.fromarray(np.zeros((3, 2), np.uint8), mode="L").save(truth / "b.png")
        expect = "%s: prediction is 2x2 (H x W), its ground truth 3x2" % (pred / "b.png")
    elif case == "label":
        Image.fromarray(np.full((2, 2), 7, np.uint8), mode="L").save(truth / "b.png")
        expect = "ground truth has label 7"
    elif case == "empty":
        for f in pred.glob("*.png"):
            f.unlink()
        expect = "no label maps"
    else:
        truth = truth / "nope"
        expect = "ground truth folder does not exist"
    assert evaluate(pred, truth) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("crfrnn: error:") and expect in err[0], err
