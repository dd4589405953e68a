"""``crfrnn unroll``: the MultiStageMeanfield layers written out as T iterations of step layers."""
from crfrnn_np import Net, proto
from crfrnn_np.testing import MEANFIELD_NET_TEXT as NET_TEXT, meanfield_snippet


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
