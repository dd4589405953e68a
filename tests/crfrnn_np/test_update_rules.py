"""The solvers' update rules against the formulas written out per element in plain Python floats (spec
caffe.md §1.6), over three steps with the history carried along; history updated in place; float32 in,
float32 out."""
import math

import numpy as np
import pytest

from crfrnn_np import update_rules

G = [np.array([0.5, -2.0, 0.0, 3.0]), np.array([1.0, 0.25, -1.5, -3.0]), np.array([-0.75, 1.0, 2.0, 0.5])]
RATE, MOMENTUM, DELTA = 0.1, 0.9, 1e-8


def reference(rule, grads):
    """Per element, with scalars only. Returns the steps of every iteration, (3, 4)."""
    steps = []
    for e in range(4):
        h = h2 = 0.0
        row = []
        for t, g in enumerate(grads, start=1):
            g = float(g[e])
            if rule == "sgd":
                h = MOMENTUM * h + RATE * g
                s = h
            elif rule == "nesterov":
                new = MOMENTUM * h + RATE * g
                s, h = (1 + MOMENTUM) * new - MOMENTUM * h, new
            elif rule == "adagrad":
                h += g * g
                s = RATE * g / (math.sqrt(h) + DELTA)
            elif rule == "rmsprop":
                h = 0.98 * h + 0.02 * g * g
                s = RATE * g / (math.sqrt(h) + DELTA)
            elif rule == "adadelta":
                h = 0.95 * h + 0.05 * g * g
                u = g * math.sqrt((h2 + 1e-6) / (h + 1e-6))
                h2 = 0.95 * h2 + 0.05 * u * u
                s = RATE * u
            elif rule == "adam":
                h = 0.9 * h + 0.1 * g
                h2 = 0.999 * h2 + 0.001 * g * g
                s = RATE * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * h / (math.sqrt(h2) + DELTA)
            row.append(s)
        steps.append(row)
    return np.array(steps).T


def run(rule, grads, dtype):
    h, h2 = np.zeros(4, dtype), np.zeros(4, dtype)
    steps = []
    for t, g in enumerate(grads, start=1):
        g = g.astype(dtype)
        if rule == "sgd":
            s = update_rules.sgd(g, h, RATE, MOMENTUM)
        elif rule == "nesterov":
            s = update_rules.nesterov(g, h, RATE, MOMENTUM)
        elif rule == "adagrad":
            s = update_rules.adagrad(g, h, RATE, DELTA)
        elif rule == "rmsprop":
            s = update_rules.rmsprop(g, h, RATE, 0.98, DELTA)
        elif rule == "adadelta":
            s = update_rules.adadelta(g, h, h2, RATE, 0.95, 1e-6)
        else:
            s = update_rules.adam(g, h, h2, RATE, 0.9, 0.999, DELTA, t)
        assert s.dtype == dtype and s is not h and s is not h2
        steps.append(s)
    return np.array(steps), h


@pytest.mark.parametrize("rule", ["sgd", "nesterov", "adagrad", "rmsprop", "adadelta", "adam"])
def test_rule_matches_the_formula(rule):
    steps, history = run(rule, G, np.float64)
    np.testing.assert_allclose(steps, reference(rule, G), rtol=1e-12, atol=1e-15)
    assert np.any(history != 0)                    # the history was updated in place
    steps32, _ = run(rule, G, np.float32)
    np.testing.assert_allclose(steps32, steps, rtol=1e-5, atol=1e-6)
