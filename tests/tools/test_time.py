"""``crfrnn time``: Caffe's benchmark lines, per layer forward and backward."""
import pytest

from crfrnn_np.tools.main import main

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
