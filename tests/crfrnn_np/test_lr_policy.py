"""Learning-rate policies against their formulas (spec caffe.md §1.6) and the LeNet tutorial's printed value."""
import math

import pytest

from crfrnn_np import SolverError, proto
from crfrnn_np.lr_policy import learning_rate, rate_from_param


def test_lenet_inv_check_value():
    # examples/mnist/readme.md prints "Iteration 100, lr = 0.00992565" for the LeNet solver
    rate, _ = learning_rate("inv", 100, 0.01, gamma=1e-4, power=0.75)
    assert round(rate, 8) == 0.00992565


def test_lenet_solver_file_rate(anchor):
    param = proto.read_prototxt(str(anchor("caffe_lenet", "lenet_solver.prototxt")), "SolverParameter")
    rate, _ = rate_from_param(param, 100)
    assert abs(rate - 0.00992565) < 5e-9


@pytest.mark.parametrize("it", [0, 1, 7, 99, 1000, 12345])
def test_closed_form_policies(it):
    base, gamma, power = 0.05, 0.9, 0.75
    assert learning_rate("fixed", it, base)[0] == base
    assert math.isclose(learning_rate("step", it, base, gamma=gamma, stepsize=10)[0],
                        base * gamma ** (it // 10), rel_tol=1e-12)
    assert math.isclose(learning_rate("exp", it, base, gamma=0.999)[0], base * 0.999 ** it, rel_tol=1e-12)
    assert math.isclose(learning_rate("inv", it, base, gamma=1e-3, power=power)[0],
                        base * (1 + 1e-3 * it) ** -power, rel_tol=1e-12)
    assert math.isclose(learning_rate("poly", it, base, power=2.0, max_iter=20000)[0],
                        base * (1 - it / 20000) ** 2, rel_tol=1e-12)
    assert math.isclose(learning_rate("sigmoid", it, base, gamma=-0.01, stepsize=500)[0],
                        base / (1 + math.exp(0.01 * (it - 500))), rel_tol=1e-12)


def test_step_returns_step_index():
    assert learning_rate("step", 25, 1.0, gamma=0.5, stepsize=10) == (0.25, 2)


def test_multistep_advances_one_step_per_call():
    stepvalue = [3, 5, 6]
    step, got = 0, []
    for it in range(9):
        rate, step = learning_rate("multistep", it, 1.0, gamma=0.1, stepvalue=stepvalue, current_step=step)
        got.append(rate)
    expected = [1, 1, 1, 0.1, 0.1, 0.01, 0.001, 0.001, 0.001]
    assert got == pytest.approx(expected, rel=1e-12)
    assert step == 3


def test_multistep_resumed_late_catches_up_one_step_per_iteration():
    # Caffe advances current_step by at most one per iteration
    rate, step = learning_rate("multistep", 100, 1.0, gamma=0.1, stepvalue=[3, 5], current_step=0)
    assert (rate, step) == (pytest.approx(0.1), 1)
    rate, step = learning_rate("multistep", 101, 1.0, gamma=0.1, stepvalue=[3, 5], current_step=step)
    assert (rate, step) == (pytest.approx(0.01), 2)


def test_errors():
    with pytest.raises(SolverError, match="unknown lr_policy"):
        learning_rate("cosine", 0, 0.1)
    with pytest.raises(SolverError, match="stepsize"):
        learning_rate("step", 0, 0.1, gamma=0.1, stepsize=0)
