"""``crfrnn time --backend cuda`` end to end under the numba.cuda simulator (a subprocess with
NUMBA_ENABLE_CUDASIM=1): every layer of a tiny net runs on the device and the table is printed. On a real GPU
the timer is CUDA events; the simulator's events record no time, so there it is the wall clock."""

import pytest

from crfrnn_np.testing import run_under_simulator

NET = """name: "tiny" force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 8 dim: 8 } } }
layer { name: "c" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 2 kernel_size: 3
        pad: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "r" type: "ReLU" bottom: "c" top: "c" }
layer { name: "s" type: "Softmax" bottom: "c" top: "y" }
"""


@pytest.mark.cudasim
def test_time_on_the_cuda_backend_under_simulator(tmp_path):
    model = tmp_path / "tiny.prototxt"
    model.write_text(NET)
    out = run_under_simulator(["-m", "crfrnn_np.tools.main", "time", "--model", model, "--backend", "cuda",
                               "--iterations", "2"], timeout=300)
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
