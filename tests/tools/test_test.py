"""``crfrnn test``: Caffe's per-batch and mean lines, the loss weights of loss outputs, and errors."""
import io

import numpy as np
import pytest

from crfrnn_np import Error, Net, proto
from crfrnn_np.tools import test as test_tool            # (its function test_net is not a pytest test)
from crfrnn_np.tools.main import main

NET = """name: "scored"
layer { name: "in" type: "Input" top: "x" top: "label" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 3 weight_filler { type: "constant" value: 0 }
                              bias_filler { type: "constant" value: 0 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "y" bottom: "label" top: "loss" loss_weight: 2 }
layer { name: "acc" type: "Accuracy" bottom: "y" bottom: "label" top: "acc" }
"""


def test_lines_and_means():
    net = Net(proto.parse(NET), phase="TEST")
    net.blobs["label"].data[...] = [0, 2]
    net.params["ip"][1].data[...] = [1.0, 0.0, 0.0]            # class 0 always wins
    out = io.StringIO()
    loss, means = test_tool.test_net(net, 3, out)
    per_position = np.log(1 + 2 * np.exp(-1.0)) * np.array([1.0, 1.0]) + [0.0, 1.0]   # -log softmax
    expected_loss = 2 * per_position.mean()
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    assert means["acc"] == 0.5 and means["loss"] == pytest.approx(per_position.mean(), rel=1e-6)
    lines = out.getvalue().splitlines()
    assert sorted(lines[:2]) == ["Batch 0, acc = 0.5", "Batch 0, loss = %g" % np.float32(per_position.mean())]
    assert "Loss: %g" % loss in lines
    assert "loss = %g (* 2 = %g loss)" % (means["loss"], 2 * means["loss"]) in lines
    assert "acc = 0.5" in lines and len(lines) == 3 * 2 + 1 + 2
    with pytest.raises(Error, match="at least 1"):
        test_tool.test_net(net, 0, out)


def test_verb_warns_without_weights(tmp_path, capsys):
    model = tmp_path / "net.prototxt"
    model.write_text(NET)
    assert main(["test", "--model", str(model), "--iterations", "2"]) == 0
    captured = capsys.readouterr()
    assert "no --weights given" in captured.err
    assert "Running for 2 iterations." in captured.out and "acc = " in captured.out
