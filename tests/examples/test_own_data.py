"""The own-data recipe (examples/own_data/run.py) end to end at a tiny size: data written, both stages
trained with ``crfrnn train``, the CRF layer reported as skipped by ``--weights``, the validation set scored."""
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


def test_mean_iu_of_a_hand_counted_confusion_matrix():
    example = load_example()
    pred = np.array([[0, 0, 1], [1, 2, 2]])
    truth = np.array([[0, 1, 1], [1, 2, 255]])
    conf = example.confusion(pred, truth, 4)
    # truth 0: pred 0 once; truth 1: pred 0 once, pred 1 twice; truth 2: pred 2 once; the 255 pixel is left out
    assert conf.tolist() == [[1, 0, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    miu, ius = example.mean_iu(conf)
    # IU_0 = 1 / (2 + 1 - 1), IU_1 = 2 / (2 + 3 - 2), IU_2 = 1 / 1, class 3 absent (no union): left out
    np.testing.assert_allclose(ius[:3], [0.5, 2 / 3, 1.0])
    assert np.isnan(ius[3]) and abs(miu - (0.5 + 2 / 3 + 1) / 3) < 1e-12


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
    assert all(0.0 <= out[k] <= 1.0 for k in "abc")
