"""``crfrnn gradcheck``: the table of relative errors, the skipped bottoms with their reason, MAX pooling
after a ReLU, and an unknown layer name."""
import pathlib

from crfrnn_np.tools.main import main

ROOT = pathlib.Path(__file__).resolve().parents[2]


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


def test_gradcheck_unknown_layer(net_file, capsys):
    assert main(["gradcheck", "--model", str(net_file), "--layer", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("crfrnn: error:") and "nope" in err
