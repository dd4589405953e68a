"""The own-data recipe (examples/own_data/run.py) end to end at a tiny size: data written, both stages
trained with ``crfrnn train``, the CRF layer reported as skipped by ``--weights``, the validation predictions
written as label PNGs and scored by ``crfrnn evaluate`` (checked here against a mean IU counted with NumPy from
the same PNGs; the hand-counted confusion matrices are tests/crfrnn_np/test_metrics.py)."""
import importlib.util
import pathlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_example():
    spec = importlib.util.spec_from_file_location("own_data_run", ROOT / "examples" / "own_data" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_end_to_end(tmp_path, capsys):
    example = load_example()
    out = example.run(example.main.__globals__["argparse"].Namespace(work=str(tmp_path), quick=True, seed=3))
    log = capsys.readouterr().out
    lines = (tmp_path / "data" / "train.txt").read_text().split("\n")
    assert lines[0] == "images/0000.jpg labels/0000.png" and len([ln for ln in lines if ln]) == 6
    with Image.open(tmp_path / "data" / "labels" / "0000.png") as im:
        assert im.mode == "P" and im.size == (32, 32)
        assert set(np.unique(np.asarray(im))) <= {0, 1, 2, 3}
    assert "Layer inference1: not in fcn_iter_6.caffemodel, keeps its filler initialisation" in log
    assert "Optimization Done." in log and log.count("$ crfrnn train") == 2
    for key in ("fcn_weights", "crf_weights", "panel"):
        assert pathlib.Path(out[key]).is_file()
    assert log.count("$ crfrnn evaluate") == 3
    truth_dir = pathlib.Path(out["ground_truth"])
    stems = sorted(p.stem for p in truth_dir.glob("*.png"))
    assert stems == ["0006", "0007", "0008"]                  # the 3 validation images, by stem
    for key in "abc":
        inter, union = np.zeros(4), np.zeros(4)
        for s in stems:
            with Image.open(pathlib.Path(out["predictions"]) / key / (s + ".png")) as im:
                pred = np.asarray(im)
            with Image.open(tmp_path / "data" / "labels" / (s + ".png")) as im:
                truth = np.asarray(im)
            for c in range(4):
                inter[c] += np.sum((pred == c) & (truth == c))
                union[c] += np.sum((pred == c) | (truth == c))
        assert abs(out[key] - np.mean(inter[union > 0] / union[union > 0])) < 1e-12
        assert (tmp_path / ("scores_%s.json" % key)).is_file()
