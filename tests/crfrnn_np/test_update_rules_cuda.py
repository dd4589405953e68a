"""The solvers on the device (crfrnn_np/update_rules_cuda.py and the ``cuda`` branches of solver.py), under the
numba.cuda simulator in a subprocess (cudasim_solver_check.py): each of SGD, Nesterov, AdaGrad, RMSProp,
AdaDelta and Adam gives the host rule's step and history in float32 and float64; the L1 term and the clipping
sum of squares match NumPy; an SGD (momentum, L2) and an Adam (L1, clipping, iter_size 2) solver train a small
net on cuda exactly as on cpu, and one iteration moves nothing to the device and only the loss (and the
clipping norm) back; a snapshot of a device solver resumes on the device as the CPU solver continues."""
import pathlib

import pytest

from crfrnn_np.testing import run_under_simulator

HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.cudasim
def test_solvers_on_the_device_equal_cpu_without_copies():
    out = run_under_simulator([str(HERE / "cudasim_solver_check.py")])
    for rule in ("sgd", "nesterov", "adagrad", "rmsprop", "adadelta", "adam"):
        for dtype in ("float32", "float64"):
            assert "rule %s %s: cuda == cpu" % (rule, dtype) in out
    assert "l1 and sum of squares: cuda == cpu" in out
    assert "SGD float32: cuda == cpu after 2 iterations; one iteration moves {'to_device': 0, 'to_host': 1}" in out
    assert "Adam float64: cuda == cpu after 2 iterations; one iteration moves {'to_device': 0, 'to_host': 3}" in out
    for case in ("SGD float32", "Adam float64"):
        assert "%s: resumed on cuda == cpu" % case in out
    assert "cudasim solvers OK" in out
