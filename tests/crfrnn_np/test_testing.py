"""crfrnn_np.testing: the snippet helpers, and the layer battery failing where it should (a battery that
cannot fail would prove nothing)."""
import numpy as np
import pytest

import crfrnn_np.layer as layer_module
from crfrnn_np import NetError
from crfrnn_np.gradcheck import GradientCheckError
from crfrnn_np.layer import Layer, register_layer
from crfrnn_np.testing import LayerTestCase, make_layer, parse_layer


def test_parse_layer_block_or_body():
    a = parse_layer('layer { name: "r" type: "ReLU" bottom: "x" top: "x" }')
    b = parse_layer('name: "r" type: "ReLU" bottom: "x" top: "x"')
    assert (a.name, a.type, list(a.top)) == (b.name, b.type, list(b.top)) == ("r", "ReLU", ["x"])
    with pytest.raises(NetError, match="exactly one layer.*got 2"):
        parse_layer('layer { name: "a" type: "ReLU" } layer { name: "b" type: "ReLU" }')


def test_make_layer_blobs():
    layer, bottom, top = make_layer('name: "r" type: "ReLU" bottom: "x" top: "x"', [[1.0, -2.0]],
                                    dtype=np.float32)
    assert top[0] is bottom[0] and bottom[0].name == "x" and bottom[0].data.dtype == np.float32
    layer, bottom, top = make_layer('name: "s" type: "Split" bottom: "x"', [np.ones(2)], num_top=3)
    assert [t.name for t in top] == ["top0", "top1", "top2"] and top[0].shape == (2,)


class Scale(Layer):
    """y = 2 x, with a backward that is right (factor 2) or wrong (factor 3) and that may ignore
    propagate_down."""
    exact_num_bottom = 2
    exact_num_top = 1
    backward_factor = 2.0
    honour_propagate_down = True

    def reshape(self, bottom, top):
        if bottom[0].shape != bottom[1].shape:
            raise self.shape_error("bottoms differ")
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        top[0].data = 2 * (bottom[0].data + bottom[1].data)

    def backward_cpu(self, top, propagate_down, bottom):
        for i in range(2):
            if propagate_down[i] or not self.honour_propagate_down:
                bottom[i].diff = self.backward_factor * top[0].diff


class Case(LayerTestCase):
    snippet = 'layer { name: "s" type: "Scale" bottom: "a" bottom: "b" top: "y" }'
    bottom_shapes = [(2, 3), (2, 3)]
    top_shapes = [(2, 3)]
    bad_bottom_shapes = [[(2, 3), (3, 2)]]


@pytest.fixture
def scale(monkeypatch):
    monkeypatch.setattr(layer_module, "_REGISTRY", dict(layer_module._REGISTRY))
    register_layer("Scale")(Scale)
    return Scale


def run_battery(case):
    for name in ("test_top_shapes", "test_float32_agrees_with_float64", "test_gradient",
                 "test_no_gradient_bottoms", "test_propagate_down", "test_bad_bottom_shapes"):
        getattr(case, name)()


def test_a_right_layer_passes(scale):
    run_battery(Case())


def test_the_battery_catches_each_kind_of_fault(scale, monkeypatch):
    monkeypatch.setattr(scale, "backward_factor", 3.0)
    with pytest.raises(GradientCheckError):
        Case().test_gradient()
    monkeypatch.setattr(scale, "backward_factor", 2.0)
    monkeypatch.setattr(scale, "honour_propagate_down", False)
    with pytest.raises(AssertionError, match="bottom 1 diff written though only bottom 0"):
        Case().test_propagate_down()
    monkeypatch.setattr(scale, "honour_propagate_down", True)
    wrong_shape = type("WrongShape", (Case,), {"top_shapes": [(3, 2)]})()
    with pytest.raises(AssertionError, match="top shapes"):
        wrong_shape.test_top_shapes()
    accepted = type("Accepted", (Case,), {"bad_bottom_shapes": [[(2, 3), (2, 3)]]})()
    with pytest.raises(AssertionError, match="did not raise crfrnn_np.Error"):
        accepted.test_bad_bottom_shapes()
    undeclared = type("Undeclared", (Case,), {"no_gradient": {1: "zero"}})()
    with pytest.raises(AssertionError):
        undeclared.test_no_gradient_bottoms()
    reference = type("Reference", (Case,), {"expected_forward": lambda self, b: [b[0] + b[1]]})()
    with pytest.raises(AssertionError, match="reference y"):
        reference.test_float32_agrees_with_float64()


def test_device_check_scripts_refuse_to_run_on_the_host(tmp_path):
    """require_device_run: a check script run without the simulator and without CRFRNN_REAL_GPU=1 exits
    saying how to run it; with CRFRNN_REAL_GPU=1 (what run_on_gpu sets) it goes on."""
    import os
    import subprocess
    import sys
    script = tmp_path / "check.py"
    script.write_text("from crfrnn_np.testing import require_device_run\nrequire_device_run()\nprint('went on')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM", "CRFRNN_REAL_GPU")}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "NUMBA_ENABLE_CUDASIM=1" in proc.stderr and "CRFRNN_REAL_GPU=1" in proc.stderr
    proc = subprocess.run([sys.executable, str(script)], env=dict(env, CRFRNN_REAL_GPU="1"), capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "went on" in proc.stdout
