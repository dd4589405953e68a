"""Test nets share the train net's parameter arrays, also after weights are loaded into the solver."""
import numpy as np

import crfrnn_np as cn

NET = """name: "t"
layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
"""


def test_test_nets_see_loaded_and_updated_weights(tmp_path):
    (tmp_path / "n.prototxt").write_text(NET)
    (tmp_path / "s.prototxt").write_text('net: "%s"\ntest_iter: 1\ntest_interval: 100\nbase_lr: 0.1\n'
                                         'lr_policy: "fixed"\nmax_iter: 1\n' % (tmp_path / "n.prototxt"))
    solver = cn.get_solver(str(tmp_path / "s.prototxt"))
    other = cn.Net(str(tmp_path / "n.prototxt"))
    other.params["ip"][0].data[...] = 7
    other.save(tmp_path / "w.caffemodel")
    solver.copy_weights(str(tmp_path / "w.caffemodel"))
    test_w = solver.test_nets[0].params["ip"][0].data
    assert np.all(test_w == 7)
    solver.net.params["ip"][0].data[0, 0] = -1
    assert test_w[0, 0] == -1
