"""``crfrnn unroll``: the MultiStageMeanfield layers written out as T iterations of step layers."""
from crfrnn_np import Net, proto


THETA_ALPHA, THETA_BETA, THETA_GAMMA = 8.0, 30.0, 3.0


def meanfield_snippet(T, extra="", engine=None):
    if engine:
        extra = "%s engine: %s" % (extra, engine)
    return ('layer { name: "inference1" type: "MultiStageMeanfield" bottom: "unary" bottom: "Q0" '
            'bottom: "data" top: "pred" multi_stage_meanfield_param { num_iterations: %d theta_alpha: %g '
            'theta_beta: %g theta_gamma: %g %s } }' % (T, THETA_ALPHA, THETA_BETA, THETA_GAMMA, extra))


NET_TEXT = """
name: "meanfield"
force_backward: true
layer { name: "input" type: "Input" top: "unary" top: "Q0" top: "data"
  input_param { shape { dim: 2 dim: 3 dim: 6 dim: 5 } shape { dim: 2 dim: 3 dim: 6 dim: 5 }
                shape { dim: 2 dim: 3 dim: 6 dim: 5 } } }
"""


def test_unroll_command_prints_a_runnable_net(tmp_path, capsys):
    from crfrnn_np.tools.main import main
    model = tmp_path / "crf.prototxt"
    model.write_text(NET_TEXT + meanfield_snippet(3))
    assert main(["unroll", str(model)]) == 0
    text = capsys.readouterr().out
    net_param = proto.parse(text)
    types = [lp.type for lp in net_param.layer]
    assert "MultiStageMeanfield" not in types
    for step, count in (("Softmax", 3), ("PermutohedralFilter", 6), ("Compatibility", 9), ("Eltwise", 3),
                        ("UnaryAdd", 3)):
        assert types.count(step) == count
    names = {spec.name for lp in net_param.layer for spec in lp.param}
    assert names == {"inference1_spatial_weight", "inference1_bilateral_weight", "inference1_compatibility"}
    net = Net(net_param)
    assert net.outputs == ["pred"] and len(net.learnable_params) == 3
