"""The command line's ``--backend cuda`` check: one line and exit status 1 when there is no GPU."""
import pytest

from crfrnn_np import backend
from crfrnn_np.tools.main import main

VERBS = {
    "segment": ["--model", "crfrnn_deploy", "--image", "in.png", "--output", "out.png"],
    "test": ["--model", "crfrnn_deploy"],
    "time": ["--model", "crfrnn_deploy"],
    "train": ["--solver", "solver.prototxt"],
}


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_cuda_without_gpu_is_one_line(verb, capsys, tmp_path, monkeypatch):
    if backend.cuda_available():
        pytest.skip("this machine has a CUDA device (or the simulator is on): the no-GPU path cannot be shown")
    monkeypatch.chdir(tmp_path)
    rc = main([verb] + VERBS[verb] + ["--backend", "cuda"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("crfrnn: error: backend 'cuda'")
    assert "no GPU" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out.png").exists()

