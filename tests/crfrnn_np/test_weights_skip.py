"""Starting from weights trained with another class count: what --weights copies, skips and says."""
import numpy as np
import pytest

import crfrnn_np as cn
from crfrnn_np import WeightsError

NET = """name: "n%(c)d"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 5 kernel_size: 1 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "%(score)s" type: "Convolution" bottom: "conv1" top: "score"
        convolution_param { num_output: %(c)d kernel_size: 1 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" }
"""


def solver(c, score):
    param = cn.proto.parse('base_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\nrandom_seed: %d\n' % c,
                           "SolverParameter")
    param.net_param = cn.proto.parse(NET % {"c": c, "score": score})
    lines = []
    return cn.get_solver(param, log=lines.append), lines


def test_renamed_class_layer_is_skipped_and_logged(tmp_path):
    src, _ = solver(21, "score")
    src.net.save(str(tmp_path / "voc.caffemodel"))
    dst, lines = solver(4, "score_4classes")
    before = dst.net.params["score_4classes"][0].data.copy()
    report = dst.copy_weights(str(tmp_path / "voc.caffemodel"))
    assert report == {"copied": ["conv1"], "ignored": ["score"], "missing": ["score_4classes"]}
    np.testing.assert_array_equal(dst.net.params["conv1"][0].data, src.net.params["conv1"][0].data)
    np.testing.assert_array_equal(dst.net.params["score_4classes"][0].data, before)
    assert "Ignoring source layer score (no layer of this name in net 'n4')" in lines
    assert "Layer score_4classes: not in voc.caffemodel, keeps its filler initialisation" in lines
    # the same with HDF5 weights
    src.net.save(str(tmp_path / "voc.h5"))
    dst2, _ = solver(4, "score_4classes")
    assert dst2.net.copy_from(str(tmp_path / "voc.h5")) == report


def test_unrenamed_class_layer_fails_with_the_rename_hint(tmp_path):
    src, _ = solver(21, "score")
    src.net.save(str(tmp_path / "voc.caffemodel"))
    dst, _ = solver(4, "score")
    with pytest.raises(WeightsError, match="the file has 21 5 1 1 .*the net has 4 5 1 1 .*rename layer 'score'"):
        dst.copy_weights(str(tmp_path / "voc.caffemodel"))
