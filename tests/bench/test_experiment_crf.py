"""bench/experiment_crf.py over several seeds: the summary's statistics and the JSON record, at a tiny size."""
import importlib.util
import json
import pathlib

import numpy as np

# loaded by path: this test folder is also called "bench" and would shadow the package of that name
_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "experiment_crf.py"
_spec = importlib.util.spec_from_file_location("experiment_crf", _PATH)
experiment_crf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(experiment_crf)


def test_summary_is_mean_and_sample_std_with_per_seed_values(capsys):
    results = [{"a": 0.5, "b": 0.6, "c": 0.7, "c_checkpoints": [0.1, 0.2, 0.3, 0.4]},
               {"a": 0.7, "b": 0.8, "c": 0.9, "c_checkpoints": [0.5, 0.5, 0.52]}]
    record = experiment_crf.summarise([4, 9], results)
    assert record == {"seeds": [4, 9], "a": [0.5, 0.7], "b": [0.6, 0.8], "c": [0.7, 0.9],
                      "c_checkpoints": [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.52]]}
    out = capsys.readouterr().out
    # mean 0.6, sample std sqrt(((0.1)^2 + (0.1)^2) / 1) = 0.1414
    assert "(a) FCN alone                  0.6000 +- 0.1414   per seed [0.5000, 0.7000]" in out
    assert "spread of the last three checkpoints per seed: [0.2000, 0.0200]" in out


def test_two_seeds_end_to_end_write_the_json(tmp_path, capsys):
    path = tmp_path / "r.json"
    argv = ["--seeds", "3,5", "--out", str(tmp_path), "--json", str(path), "--size", "16", "--n-train", "4",
            "--n-test", "2", "--batch", "2", "--iters-fcn", "2", "--iters-crf", "2", "--eval-every", "1",
            "--diagnose"]
    assert experiment_crf.main(argv) == 0
    record = json.loads(path.read_text())
    assert record["seeds"] == [3, 5] and sorted(record) == ["a", "b", "c", "c_checkpoints", "seeds"]
    assert all(len(record[k]) == 2 for k in "abc")
    assert [len(c) for c in record["c_checkpoints"]] == [2, 2]
    # the last checkpoint is taken after the last iteration: it is (c) itself
    np.testing.assert_allclose([c[-1] for c in record["c_checkpoints"]], record["c"])
    out = capsys.readouterr().out
    assert "update norm FCN max" in out and "mean IU over 2 seeds (3, 5)" in out


def test_plot_draws_one_panel_per_setup(tmp_path):
    from PIL import Image
    record = {"seeds": [1, 2], "a": [0.5, 0.6], "b": [0.7, 0.8], "c": [0.9, 0.85],
              "c_checkpoints": [[0.8, 0.9], [0.9, 0.85]]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(record))
    assert experiment_crf.main(["--plot", "one=%s" % path, "two=x=%s" % path, "--out", str(tmp_path)]) == 0
    with Image.open(tmp_path / "checkpoints.png") as im:
        # 4 x 3.2 inches per panel at 90 dpi: two panels are 720 x 288 pixels
        assert im.format == "PNG" and im.size == (720, 288)
