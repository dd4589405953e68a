"""The command line's engine verbs (`time`, `gradcheck`) and its error contract: one line, non-zero exit."""
import pathlib
import subprocess
import sys

import pytest

from crfrnn_np.tools.main import main

ROOT = pathlib.Path(__file__).resolve().parents[2]

NET = """name: "tiny"
input: "data" input_dim: 2 input_dim: 3 input_dim: 6 input_dim: 6
force_backward: true
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool1" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.fixture
def net_file(tmp_path):
    p = tmp_path / "tiny.prototxt"
    p.write_text(NET)
    return p


def test_time_prints_caffe_lines(net_file, capsys):
    assert main(["time", "--model", str(net_file), "--iterations", "2"]) == 0
    out = capsys.readouterr().out
    assert "*** Benchmark begins ***" in out and "*** Benchmark ends ***" in out
    assert "Iteration: 2 forward-backward time:" in out
    for layer in ("conv1", "relu1", "pool1", "ip", "prob"):
        assert "%10s\tforward:" % layer in out
        assert "%10s\tbackward:" % layer in out
    assert "Average Forward-Backward:" in out


def test_gradcheck_table(net_file, capsys):
    assert main(["gradcheck", "--model", str(net_file)]) == 0
    out = capsys.readouterr().out
    for layer in ("conv1", "pool1", "ip", "prob"):
        assert layer in out
    assert "all checked layers pass" in out


def test_gradcheck_passes_on_the_demo_net(capsys):
    """The shipped demo net (Deconvolution, Crop, MultiStageMeanfield) passes, its CRF image bottom skipped
    with the reason in the table."""
    assert main(["gradcheck", "--model", str(ROOT / "models" / "demo.prototxt")]) == 0
    out = capsys.readouterr().out
    assert "all checked layers pass" in out
    crf = [line for line in out.splitlines() if line.startswith("inference1")][0]
    assert crf.split()[-1] == "ok"
    assert "skipped bottom 2" in out and "no gradient by design" in out


def test_gradcheck_max_pooling_after_relu(tmp_path, capsys):
    """A ReLU that zeroes most of its input makes whole MAX-pooling windows tie at 0, where the layer is not
    differentiable: the checker draws that layer's bottoms as distinct integers and passes."""
    p = tmp_path / "ties.prototxt"
    p.write_text('''name: "ties"
input: "data" input_dim: 1 input_dim: 2 input_dim: 12 input_dim: 12
force_backward: true
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.1 }
                            bias_filler { type: "constant" value: -1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
''')
    assert main(["gradcheck", "--model", str(p)]) == 0
    out = capsys.readouterr().out
    assert "bottoms drawn as distinct integers" in out and "all checked layers pass" in out


def test_skipping_the_crf_image_is_what_makes_it_pass(rng):
    """Checked explicitly, the CRF image bottom fails: its analytic diff is zero by design, while finite
    differences move the lattice. The skip is a declaration, not a relaxed threshold."""
    from crfrnn_np import Net
    from crfrnn_np.gradcheck import GradientChecker, GradientCheckError
    net = Net(str(ROOT / "models" / "demo.prototxt"), phase="TRAIN", dtype="float64")
    for name in net.inputs:
        net.blobs[name].data = rng.standard_normal(net.blobs[name].shape)
    net.forward_prefilled()
    i = net.layer_names.index("inference1")
    layer, bottom, top = net.layers[i], net.bottom_vecs[i], net.top_vecs[i]
    checker = GradientChecker(1e-5, 1e-6)
    assert [s[0] for s in checker.skipped_bottoms(layer, bottom)] == [2]
    assert checker.check_gradient_directional(layer, bottom, top, n_directions=1) < 1e-6
    with pytest.raises(GradientCheckError):
        checker.check_gradient_directional(layer, bottom, top, check_bottom=2, n_directions=1)


def test_gradcheck_unknown_layer(net_file, capsys):
    assert main(["gradcheck", "--model", str(net_file), "--layer", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("crfrnn: error:") and "nope" in err


@pytest.mark.parametrize("text, needle", [
    ('layer { name: "a" type: "Input" top: "x" input_param { shape { dim: 1 } } }\nlayer { nme: "b" }', ":2:"),
    ('layer { name: "a" type: "Input" top: "x" input_param { shape { dim: 1 } } ', ":1:"),
])
def test_errors_are_one_line_without_traceback(tmp_path, text, needle):
    p = tmp_path / "bad.prototxt"
    p.write_text(text)
    r = subprocess.run([sys.executable, "-m", "crfrnn_np.tools.main", "time", "--model", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crfrnn: error:") and needle in lines[0], r.stderr


def test_missing_model_file(tmp_path, capsys):
    assert main(["time", "--model", str(tmp_path / "none.prototxt")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_a_verb_that_fails_to_import_is_an_error(monkeypatch, capsys):
    """A broken verb module stops the command line with one line naming it, instead of vanishing from the help."""
    import importlib
    real = importlib.import_module

    def broken(name, *args, **kwargs):
        if name == "crfrnn_np.tools.trace":
            raise ImportError("No module named 'h5py_missing'", name="h5py_missing")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(importlib, "import_module", broken)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the 'trace' command cannot be loaded" in err[0] and "h5py_missing" in err[0]
