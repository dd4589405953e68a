"""Under the numba.cuda simulator: every solver's update on the device (crfrnn_np/update_rules_cuda.py) against
the same solver on the CPU, float32 and float64, with momentum, L2 and L1 weight decay, gradient clipping and
iter_size among the cases; and the transfers of one training iteration on the device (run by
test_update_rules_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1)."""
import os
import sys

import numpy as np

NET = """name: "tiny"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "s" param { lr_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "label" top: "loss" }"""
X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
LABEL = np.array([2.0, 0.0])
#: (type, extra SolverParameter fields, dtype): whole solvers (the rules alone: RULES)
CASES = [("SGD", "momentum: 0.9 weight_decay: 0.01", "float32"),
         ("Adam", "momentum: 0.9 momentum2: 0.999 weight_decay: 0.01 regularization_type: \"L1\" "
                  "clip_gradients: 0.5 iter_size: 2", "float64")]
#: rule name -> (number of history buffers, hyper-parameters after the rate)
RULES = {"sgd": (1, (0.9,)), "nesterov": (1, (0.9,)), "adagrad": (1, (1e-8,)), "rmsprop": (1, (0.9, 1e-8)),
         "adadelta": (2, (0.95, 1e-6)), "adam": (2, (0.9, 0.999, 1e-8, 3))}


def check_rules():
    """Each update rule on the device against update_rules.py: the step and the updated history, twice in a
    row (so the history starts non-zero the second time)."""
    from numba import cuda
    from crfrnn_np import update_rules, update_rules_cuda
    rng = np.random.default_rng(2)
    for name, (n_history, hyper) in RULES.items():
        for dtype in ("float32", "float64"):
            host_h = [np.abs(rng.standard_normal(20)).astype(dtype) * 0.1 for _ in range(n_history)]
            dev_h = [cuda.to_device(h) for h in host_h]
            for _ in range(2):
                g = rng.standard_normal(20).astype(dtype)
                step = getattr(update_rules, name)(g.copy(), *host_h, 0.01, *hyper)
                dev_g = cuda.to_device(g)
                getattr(update_rules_cuda, name)(dev_g, *dev_h, 0.01, *hyper)
                tol = 1e-6 if dtype == "float32" else 1e-14
                for a, b in zip([dev_g.copy_to_host()] + [h.copy_to_host() for h in dev_h], [step] + host_h):
                    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg="%s %s" % (name, dtype))
            print("rule %s %s: cuda == cpu" % (name, dtype))
    w = np.array([-1.5, 0.0, 2.0, -0.0])
    dev_g = cuda.to_device(np.ones(4))
    update_rules_cuda.add_l1(0.25, cuda.to_device(w), dev_g)
    np.testing.assert_array_equal(dev_g.copy_to_host(), 1 + 0.25 * np.sign(w))
    assert update_rules_cuda.sum_of_squares([cuda.to_device(w), dev_g]) == float(w @ w) + float(
        (1 + 0.25 * np.sign(w)) @ (1 + 0.25 * np.sign(w)))
    print("l1 and sum of squares: cuda == cpu")


def make_solver(type_, extra, dtype, backend):
    import crfrnn_np as cn
    from crfrnn_np import random as crfrnn_random
    from crfrnn_np.solver import get_solver
    crfrnn_random.set_seed(4)                               # the same filled weights on both backends
    fields = {"base_lr": "0.1"}
    for key in list(fields):
        if key + ":" in extra:
            del fields[key]
    text = 'net_param { %s }\ntype: "%s"\nlr_policy: "fixed"\nmax_iter: 100\n%s\n%s' % (
        NET, type_, " ".join("%s: %s" % kv for kv in fields.items()), extra)
    solver = get_solver(cn.proto.parse(text, "SolverParameter"), dtype=dtype, backend=backend, log=lambda s: None)
    solver.net.blobs["x"].data[...] = X
    solver.net.blobs["label"].data[...] = LABEL
    return solver


def state(solver):
    """Parameters and history on the host."""
    solver._history_to_host()
    return [b.cpu_data().copy() for b in solver.net.learnable_params] + [h.copy() for h in solver.history]


def check_resume(type_, extra, dtype, cpu, gpu):
    """A snapshot of the device solver (its history comes back to the host), restored into a new device solver,
    continues exactly as the CPU solver does."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        gpu.param.snapshot_prefix = os.path.join(tmp, "s")
        _, state_path = gpu.snapshot()
        resumed = make_solver(type_, extra, dtype, "cuda")
        resumed.restore(state_path)
        resumed.step(1)
        cpu.step(1)
        tol = 1e-5 if dtype == "float32" else 1e-12
        for a, b in zip(state(resumed), state(cpu)):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg="resumed %s %s" % (type_, dtype))
    print("%s %s: resumed on cuda == cpu" % (type_, dtype))


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [here, os.path.join(here, "..", "layers")]
    from crfrnn_np import config
    from cudasim_dense_check import SIMULATOR_THREADS, SIMULATOR_TILE
    # small blocks under the simulator (see cudasim_dense_check.py), set before the kernel modules load
    config.GEMM_TILE, config.THREADS_PER_BLOCK = SIMULATOR_TILE, SIMULATOR_THREADS
    from cudasim_net import counting_transfers
    from crfrnn_np.cuda_kernel import recording
    from crfrnn_np.testing import assert_declared
    with recording() as launches:
        check_rules()
        for type_, extra, dtype in CASES:
            cpu = make_solver(type_, extra, dtype, "cpu")
            gpu = make_solver(type_, extra, dtype, "cuda")
            cpu.step(2)
            gpu.step(1)
            with counting_transfers() as counts:
                gpu.step(1)
            tol = 1e-5 if dtype == "float32" else 1e-12
            for a, b in zip(state(gpu), state(cpu)):
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg="%s %s" % (type_, dtype))
            assert not np.allclose(state(cpu)[0], make_solver(type_, extra, dtype, "cpu").net.learnable_params[0]
                                   .cpu_data()), "the parameters did not move"
            # the loss comes back (once per forward); clipping also brings its sum of squares back
            passes = 2 if "iter_size: 2" in extra else 1
            expected = {"to_device": 0, "to_host": passes + (1 if "clip" in extra else 0)}
            assert counts == expected, (type_, dtype, counts, expected)
            print("%s %s: cuda == cpu after 2 iterations; one iteration moves %s" % (type_, dtype, counts))
            check_resume(type_, extra, dtype, cpu, gpu)
    assert_declared(launches)
    print("launched:", " ".join(sorted({n.rsplit(".", 1)[-1] for n, _ in launches})))
    print("cudasim solvers OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
