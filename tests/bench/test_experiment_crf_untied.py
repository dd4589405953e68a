"""bench/experiment_crf.py's ``--untied`` study and the learned-mu picture (the paper's Figure 5), tiny sizes."""
import importlib.util
import json
import pathlib

import numpy as np

# loaded by path: this test folder is also called "bench" and would shadow the package of that name
_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "experiment_crf.py"
_spec = importlib.util.spec_from_file_location("experiment_crf", _PATH)
experiment_crf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(experiment_crf)


def test_untied_net_text_has_one_parameter_set_per_iteration():
    import crfrnn_np as cn
    text, out = experiment_crf.net_text(2, 16, 3, crf_iterations=4, loss=False, crf_lr_mult=(10, 10, 0),
                                        untied=True)
    net = cn.Net(cn.proto.parse(text), phase="TEST")
    layer = net.layer_dict["inference1"]
    assert out == "pred" and layer.untied and layer.engine == "STEPS" and len(layer.blobs) == 12
    crf = [net.params_lr[i] for i, name in enumerate(net.param_names) if name.startswith("inference1/")]
    assert crf == [10.0, 10.0, 0.0] * 4


def test_untied_run_records_the_last_iterations_mu(tmp_path, capsys):
    path = tmp_path / "u.json"
    argv = ["--seeds", "3", "--out", str(tmp_path), "--json", str(path), "--size", "16", "--n-train", "4",
            "--n-test", "2", "--batch", "2", "--iters-fcn", "2", "--iters-crf", "2", "--eval-every", "1",
            "--untied", "--train-iterations", "2", "--diagnose"]
    assert experiment_crf.main(argv) == 0
    record = json.loads(path.read_text())
    assert record["classes"] == list(experiment_crf.CLASSES)
    mu = np.array(record["mu"][0])
    assert mu.shape == (3, 3)
    # two CRF steps at lr 1e-4 x 10 move mu only a little from its -I start, but move it
    assert np.abs(mu + np.eye(3)).max() < 0.05 and np.abs(mu + np.eye(3)).max() > 0
    out = capsys.readouterr().out
    assert "(T = 2, untied; T = 2 at test)" in out and "mu of iteration 2" in out


def test_plot_draws_the_learned_mu_with_class_names(tmp_path):
    from PIL import Image
    mu = [[-1.0, 0.1, 0.0], [0.2, -0.9, 0.0], [0.0, 0.0, -1.1]]
    record = {"seeds": [1, 2], "a": [0.5, 0.6], "b": [0.7, 0.8], "c": [0.9, 0.85],
              "c_checkpoints": [[0.8, 0.9], [0.9, 0.85]], "mu": [mu, mu], "classes": ["bg", "disc", "rect"]}
    old = dict(record)
    del old["mu"], old["classes"]
    (tmp_path / "r.json").write_text(json.dumps(record))
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert experiment_crf.main(["--plot", "one=%s" % (tmp_path / "r.json"), "old=%s" % (tmp_path / "old.json"),
                                "--out", str(tmp_path)]) == 0
    with Image.open(tmp_path / "compatibility.png") as im:
        # only the record with mu: one panel, (2.8 + 1.6) x 3.8 inches at 90 dpi
        assert im.format == "PNG" and im.size == (396, 342)
