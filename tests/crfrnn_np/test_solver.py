"""Each solver's update on a tiny quadratic, against the formulas of spec caffe.md §1.6 written out here.

The net: ``t = W x + b`` (InnerProduct, one output, W with lr_mult 1 / decay_mult 1, b with lr_mult 2 /
decay_mult 0) and the loss ``0.5 * sum(t * t)`` (Eltwise PROD of t with itself, loss_weight 0.5), so with
``r = W x + b`` the gradients are ``dW = sum_n r_n x_n`` and ``db = sum_n r_n``.
"""
import math

import numpy as np
import pytest

import crfrnn_np as cn
from crfrnn_np import SolverError
from crfrnn_np.solver import get_solver

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
W0, B0 = 0.5, -0.25

NET = """
name: "quad"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "t"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 1
          weight_filler { type: "constant" value: %g } bias_filler { type: "constant" value: %g } } }
layer { name: "sq" type: "Eltwise" bottom: "t" bottom: "t" top: "sq" eltwise_param { operation: PROD }
        loss_weight: 0.5 }
""" % (W0, B0)


def make_solver(extra, type_="SGD"):
    text = 'net_param { %s }\ntype: "%s"\nbase_lr: 0.1\nlr_policy: "step"\ngamma: 0.5\nstepsize: 2\n' \
           'max_iter: 100\n%s' % (NET, type_, extra)
    solver = get_solver(cn.proto.parse(text, "SolverParameter"), dtype="float64", log=lambda s: None)
    solver.net.blobs["x"].data[...] = X
    return solver


def reference(type_, n_iter, momentum=0.0, weight_decay=0.0, reg="L2", iter_size=1, clip=-1.0, delta=1e-8,
              rms_decay=0.99, momentum2=0.999):
    """Naive float64 simulation of Caffe's update for the quadratic above.

    The hyper-parameters are float fields of SolverParameter, so they are rounded to float32 first.
    """
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    momentum, weight_decay, clip, delta = f32(momentum), f32(weight_decay), f32(clip), f32(delta)
    rms_decay, momentum2, base_lr = f32(rms_decay), f32(momentum2), f32(0.1)
    w = np.full(3, W0)
    b = np.array([B0])
    params = [w, b]
    lr_mult = [1.0, 2.0]
    decay_mult = [1.0, 0.0]
    h1 = [np.zeros(3), np.zeros(1)]
    h2 = [np.zeros(3), np.zeros(1)]
    for it in range(n_iter):
        r = X @ w + b[0]
        grads = [iter_size * (r @ X), iter_size * np.array([r.sum()])]   # iter_size passes accumulate
        rate = base_lr * 0.5 ** (it // 2)
        if clip >= 0:
            norm = math.sqrt(sum(float(g @ g) for g in grads))
            if norm > clip:
                grads = [g * (clip / norm) for g in grads]
        steps = []
        for k in range(2):
            g = grads[k] / iter_size
            decay = weight_decay * decay_mult[k]
            g = g + decay * (params[k] if reg == "L2" else np.sign(params[k]))
            lr = rate * lr_mult[k]
            if type_ == "SGD":
                h1[k] = momentum * h1[k] + lr * g
                s = h1[k]
            elif type_ == "Nesterov":
                old = h1[k]
                h1[k] = momentum * h1[k] + lr * g
                s = (1 + momentum) * h1[k] - momentum * old
            elif type_ == "AdaGrad":
                h1[k] = h1[k] + g * g
                s = lr * g / (np.sqrt(h1[k]) + delta)
            elif type_ == "RMSProp":
                h1[k] = rms_decay * h1[k] + (1 - rms_decay) * g * g
                s = lr * g / (np.sqrt(h1[k]) + delta)
            elif type_ == "AdaDelta":
                h1[k] = momentum * h1[k] + (1 - momentum) * g * g
                u = g * np.sqrt((h2[k] + delta) / (h1[k] + delta))
                h2[k] = momentum * h2[k] + (1 - momentum) * u * u
                s = lr * u
            elif type_ == "Adam":
                t = it + 1
                h1[k] = momentum * h1[k] + (1 - momentum) * g
                h2[k] = momentum2 * h2[k] + (1 - momentum2) * g * g
                s = lr * math.sqrt(1 - momentum2 ** t) / (1 - momentum ** t) * h1[k] / (np.sqrt(h2[k]) + delta)
            steps.append(s)
        params = [p - s for p, s in zip(params, steps)]
        w, b = params
    return w, b, h1, h2


CASES = [
    ("SGD", "momentum: 0.9\nweight_decay: 0.01", dict(momentum=0.9, weight_decay=0.01)),
    ("SGD", "momentum: 0.5\nweight_decay: 0.2\nregularization_type: \"L1\"",
     dict(momentum=0.5, weight_decay=0.2, reg="L1")),
    ("SGD", "momentum: 0.9\niter_size: 3", dict(momentum=0.9, iter_size=3)),
    ("SGD", "momentum: 0.9\nclip_gradients: 0.5", dict(momentum=0.9, clip=0.5)),
    ("Nesterov", "momentum: 0.9\nweight_decay: 0.01", dict(momentum=0.9, weight_decay=0.01)),
    ("AdaGrad", "weight_decay: 0.01\ndelta: 1e-6", dict(weight_decay=0.01, delta=1e-6)),
    ("RMSProp", "rms_decay: 0.9\ndelta: 1e-6", dict(rms_decay=0.9, delta=1e-6)),
    ("AdaDelta", "momentum: 0.95\ndelta: 1e-6\nweight_decay: 0.01", dict(momentum=0.95, delta=1e-6,
                                                                        weight_decay=0.01)),
    ("Adam", "momentum: 0.9\nmomentum2: 0.99\ndelta: 1e-6", dict(momentum=0.9, momentum2=0.99, delta=1e-6)),
]


@pytest.mark.parametrize("type_,extra,kw", CASES, ids=[c[0] + "-" + str(i) for i, c in enumerate(CASES)])
def test_update_matches_formula(type_, extra, kw):
    solver = make_solver(extra, type_)
    n = 5
    solver.step(n)
    assert solver.iter == n
    w, b, h1, h2 = reference(type_, n, **kw)
    ip = solver.net.params["ip"]
    np.testing.assert_allclose(ip[0].data.reshape(-1), w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ip[1].data.reshape(-1), b, rtol=1e-12, atol=1e-14)
    assert len(solver.history) == (2 if type_ in ("AdaDelta", "Adam") else 1) * 2
    np.testing.assert_allclose(solver.history[0].reshape(-1), h1[0], rtol=1e-12, atol=1e-14)
    if type_ in ("AdaDelta", "Adam"):
        np.testing.assert_allclose(solver.history[2].reshape(-1), h2[0], rtol=1e-12, atol=1e-14)


def test_first_sgd_step_by_hand():
    # r = W0 * rowsum(X) + B0 = [0.5*1.5 - 0.25, 0.5*1.0 - 0.25] = [0.5, 0.25]
    # dW = 0.5*[0.5,-1,2] + 0.25*[1.5,0.25,-0.75] = [0.625, -0.4375, 0.8125]; db = 0.75
    solver = make_solver("momentum: 0.9")
    solver.step(1)
    lr = float(np.float32(0.1))
    np.testing.assert_allclose(solver.net.params["ip"][0].data.reshape(-1),
                               [0.5 - lr * 0.625, 0.5 + lr * 0.4375, 0.5 - lr * 0.8125], rtol=1e-14)
    np.testing.assert_allclose(solver.net.params["ip"][1].data.reshape(-1), [-0.25 - 2 * lr * 0.75], rtol=1e-14)


def test_float32_solver_stays_float32():
    text = ('net_param { %s }\nbase_lr: 0.1\nlr_policy: "step"\ngamma: 0.5\nstepsize: 2\nmomentum: 0.9\n'
            'max_iter: 3\n' % NET)
    solver = get_solver(cn.proto.parse(text, "SolverParameter"), log=lambda s: None)
    solver.net.blobs["x"].data[...] = X
    solver.step(3)
    assert solver.net.params["ip"][0].data.dtype == np.float32
    assert solver.history[0].dtype == np.float32
    w, b, _, _ = reference("SGD", 3, momentum=0.9)
    np.testing.assert_allclose(solver.net.params["ip"][0].data.reshape(-1), w, rtol=1e-5)


def test_display_lines_and_average_loss():
    lines = []
    text = ('net_param { %s }\nbase_lr: 0.01\nlr_policy: "inv"\ngamma: 0.0001\npower: 0.75\nmax_iter: 4\n'
            'display: 2\naverage_loss: 2\n' % NET)
    solver = get_solver(cn.proto.parse(text, "SolverParameter"), dtype="float64", log=lines.append)
    solver.net.blobs["x"].data[...] = X
    losses = []
    solver.add_callback(lambda s: losses.append(0.5 * float(np.sum(s.net.blobs["sq"].data))))
    solver.step(4)
    it_lines = [ln for ln in lines if ln.startswith("Iteration")]
    assert it_lines[0].startswith("Iteration 0 (") and it_lines[0].endswith("loss = 0.15625")
    assert it_lines[1] == "Iteration 0, lr = 0.01"
    assert it_lines[2].startswith("Iteration 2 (")
    assert it_lines[3] == "Iteration 2, lr = %g" % (0.01 * (1 + 0.0001 * 2) ** -0.75)
    assert "    Train net output #0: sq = " in lines[1] and "loss)" in lines[1]


def test_unknown_type_and_bad_settings():
    base = 'net_param { %s }\nbase_lr: 0.1\nlr_policy: "fixed"\n' % NET
    with pytest.raises(SolverError, match="unknown solver type 'Foo'"):
        get_solver(cn.proto.parse(base + 'type: "Foo"', "SolverParameter"))
    with pytest.raises(SolverError, match="Momentum cannot be used with AdaGrad"):
        get_solver(cn.proto.parse(base + 'type: "AdaGrad"\nmomentum: 0.9', "SolverParameter"))
    with pytest.raises(SolverError, match="both solver_type"):
        get_solver(cn.proto.parse(base + 'type: "Adam"\nsolver_type: SGD', "SolverParameter"))
    s = get_solver(cn.proto.parse(base + 'solver_type: NESTEROV', "SolverParameter"))
    assert s.type == "Nesterov"
    with pytest.raises(SolverError, match="exactly one of net"):
        get_solver(cn.proto.parse('base_lr: 0.1\nlr_policy: "fixed"', "SolverParameter"))


SHARING_NET = """name: "t"
layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
"""


def test_test_nets_see_loaded_and_updated_weights(tmp_path):
    (tmp_path / "n.prototxt").write_text(SHARING_NET)
    (tmp_path / "s.prototxt").write_text('net: "%s"\ntest_iter: 1\ntest_interval: 100\nbase_lr: 0.1\n'
                                         'lr_policy: "fixed"\nmax_iter: 1\n' % (tmp_path / "n.prototxt"))
    solver = cn.get_solver(str(tmp_path / "s.prototxt"))
    other = cn.Net(str(tmp_path / "n.prototxt"))
    other.params["ip"][0].data[...] = 7
    other.save(tmp_path / "w.caffemodel")
    solver.copy_weights(str(tmp_path / "w.caffemodel"))
    test_w = solver.test_nets[0].params["ip"][0].data
    assert np.all(test_w == 7)
    solver.net.params["ip"][0].data[0, 0] = -1
    assert test_w[0, 0] == -1
