"""``crfrnn time``: Caffe's benchmark lines, per layer forward and backward."""
from crfrnn_np.tools.main import main


def test_time_prints_caffe_lines(net_file, capsys):
    assert main(["time", "--model", str(net_file), "--iterations", "2"]) == 0
    out = capsys.readouterr().out
    assert "*** Benchmark begins ***" in out and "*** Benchmark ends ***" in out
    assert "Iteration: 2 forward-backward time:" in out
    for layer in ("conv1", "relu1", "pool1", "ip", "prob"):
        assert "%10s\tforward:" % layer in out
        assert "%10s\tbackward:" % layer in out
    assert "Average Forward-Backward:" in out
