"""The shipped nets, found by name through the package."""
import os

import pytest


def test_shipped_nets_by_name(tmp_path, monkeypatch, capsys):
    """``--model demo`` / ``Net("crfrnn_deploy")`` find the shipped nets from any folder; an unknown name says
    which nets are shipped."""
    from crfrnn_np import Net, NetError, models
    from crfrnn_np.tools.main import main
    monkeypatch.chdir(tmp_path)
    assert models.resolve("crfrnn_deploy") == models.path("crfrnn_deploy.prototxt")
    assert models.resolve("demo.prototxt") == models.path("demo.prototxt")
    assert os.path.isfile(models.path("demo", "coarse_unary.npy"))
    assert Net("demo").name == "crfrnn_demo"
    assert main(["unroll", "demo"]) == 0 and "inference1_iter10_unary_add" in capsys.readouterr().out
    with pytest.raises(NetError, match="nor is it a shipped net: crfrnn_deploy, demo"):
        Net("crfrnn_deplo")
