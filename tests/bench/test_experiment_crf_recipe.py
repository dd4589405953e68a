"""bench/experiment_crf.py's fine-tuning recipe: the defaults, the learning rate they give at each iteration,
and the lr_mult of each blob of (c)'s net."""
import importlib.util
import pathlib

import numpy as np
import pytest

import crfrnn_np as cn
from crfrnn_np import lr_policy

# loaded by path: this test folder is also called "bench" and would shadow the package of that name
_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "experiment_crf.py"
_spec = importlib.util.spec_from_file_location("experiment_crf", _PATH)
experiment_crf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(experiment_crf)


def _rates(solver, iters):
    return [lr_policy.rate_from_param(solver.param, it, 0)[0] for it in iters]


def _small_fcn_solver(args, max_iter=100):
    text, _ = experiment_crf.net_text(2, 16, 3)
    return experiment_crf.solver_for(text, args.lr_finetune, max_iter, 1, args)


def test_defaults_are_the_documented_recipe():
    args = experiment_crf.build_parser().parse_args([])
    assert (args.lr_finetune, args.lr_policy, args.gamma, args.clip) == (1e-4, "step", 0.1, 5.0)
    assert (args.fcn_lr_mult, args.crf_lr_mult) == (0.3, 30.0)


def test_step_policy_drops_by_gamma_at_half_and_three_quarters():
    args = experiment_crf.build_parser().parse_args([])
    solver = _small_fcn_solver(args)
    assert list(solver.param.stepvalue) == [50, 75] and solver.param.clip_gradients == 5.0
    # multistep walks its step index forward one iteration at a time, as the solver does
    rate, step, seen = 0.0, 0, {}
    for it in range(100):
        rate, step = lr_policy.rate_from_param(solver.param, it, step)
        seen[it] = rate
    np.testing.assert_allclose([seen[i] for i in (0, 49, 50, 74, 75, 99)], [1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6])


def test_poly_policy_uses_the_power():
    args = experiment_crf.build_parser().parse_args(["--lr-policy", "poly", "--power", "3", "--lr-finetune", "2e-4"])
    solver = _small_fcn_solver(args)
    # 2e-4 * (1 - it / 100) ** 3
    np.testing.assert_allclose(_rates(solver, [0, 50, 75]), [2e-4, 2.5e-5, 3.125e-6])


def test_unknown_policy_is_refused(capsys):
    with pytest.raises(SystemExit):
        experiment_crf.build_parser().parse_args(["--lr-policy", "cosine"])
    assert "invalid choice: 'cosine'" in capsys.readouterr().err


def test_end_to_end_net_has_fcn_and_crf_multipliers():
    text, _ = experiment_crf.net_text(2, 16, 3, crf_iterations=2, crf_lr_mult=(30, 30, 30), fcn_lr_mult=0.3)
    net = cn.Net(cn.proto.parse(text), phase="TRAIN")
    lr = dict(zip(net.param_names, net.params_lr))
    # weights at the FCN's lr_mult, biases at twice it (Caffe's habit), the fixed bilinear upsampling at 0
    assert lr["conv1/0"] == pytest.approx(0.3) and lr["conv1/1"] == pytest.approx(0.6)
    assert lr["score_coarse/0"] == pytest.approx(0.3)
    assert [lr["inference1/%d" % j] for j in range(3)] == [30.0, 30.0, 30.0]
    assert lr["upscore/0"] == 0.0
