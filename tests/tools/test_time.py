"""``crfrnn time``: Caffe's benchmark lines, per layer forward and backward; ``--backend cuda`` end to end under
the numba.cuda simulator (a subprocess with NUMBA_ENABLE_CUDASIM=1): every layer of a tiny net runs on the
device and the table is printed. On a real GPU the timer is CUDA events; the simulator's events record no
time, so there it is the wall clock."""
import os
import subprocess
import sys

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

CUDA_NET = """name: "tiny" force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 8 dim: 8 } } }
layer { name: "c" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 2 kernel_size: 3
        pad: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "r" type: "ReLU" bottom: "c" top: "c" }
layer { name: "s" type: "Softmax" bottom: "c" top: "y" }
"""


@pytest.mark.cudasim
def test_time_on_the_cuda_backend_under_simulator(tmp_path):
    model = tmp_path / "tiny.prototxt"
    model.write_text(CUDA_NET)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-m", "crfrnn_np.tools.main", "time", "--model", str(model),
                           "--backend", "cuda", "--iterations", "2"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Testing for 2 iterations." in out          # no "(CUDA events)": the simulator has none
    for layer in ("c", "r", "s"):
        assert "%10s\tforward:" % layer in out and "%10s\tbackward:" % layer in out
    assert "Average Forward pass" in out and "*** Benchmark ends ***" in out


def test_timer_uses_cuda_events_only_on_a_real_device():
    from crfrnn_np.tools.time import Timer
    assert not Timer("cpu").events
    timer = Timer("cpu")
    timer.start()
    assert timer.seconds() >= 0
