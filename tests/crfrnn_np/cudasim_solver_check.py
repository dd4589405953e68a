"""SGD training on the cuda backend under the numba.cuda simulator against the CPU (run by test_solver_cuda.py
in a subprocess with NUMBA_ENABLE_CUDASIM=1): the same parameters after three iterations (momentum, L2 weight
decay, iter_size 2), the history written by a snapshot, and what one training iteration moves across."""
import os
import sys

import numpy as np

NET = """name: "train"
layer { name: "in" type: "Input" top: "x" top: "label" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 }
        shape { dim: 2 dim: 1 dim: 4 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "c" param { lr_mult: 1 decay_mult: 1 }
        param { lr_mult: 2 decay_mult: 0 } convolution_param { num_output: 3 kernel_size: 3 pad: 1
        weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "c" bottom: "label" top: "loss" }"""

SOLVER = """net_param { %s } type: "SGD" base_lr: 0.1 momentum: 0.9 weight_decay: 0.01 lr_policy: "fixed"
iter_size: 2 max_iter: 10 display: 0 snapshot_prefix: "%s" """


def main():
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cudasim_net import counting_transfers
    from crfrnn_np import proto
    from crfrnn_np.cuda_kernel import recording, undeclared
    from crfrnn_np.solver import get_solver
    import tempfile
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 4))
    label = rng.integers(0, 3, (2, 1, 4, 4)).astype(np.float64)
    results = {}
    tmp = tempfile.mkdtemp()
    with recording() as launches:
        for backend in ("cpu", "cuda"):
            text = SOLVER % (NET, os.path.join(tmp, backend))
            solver = get_solver(proto.parse(text, "SolverParameter"), dtype="float64", backend=backend,
                                log=lambda s: None)
            if results:
                for name, blobs in solver.net.params.items():
                    for blob, value in zip(blobs, results["cpu-init"][name]):
                        blob.data[...] = value
            else:
                results["cpu-init"] = {name: [b.data.copy() for b in blobs]
                                       for name, blobs in solver.net.params.items()}
            solver.net.blobs["x"].data[...] = x
            solver.net.blobs["label"].data[...] = label
            solver.step(2)
            if backend == "cuda":
                with counting_transfers() as counts:
                    solver.step(1)
                print("one training iteration (iter_size 2) moves", counts)
                assert counts == {"to_device": 0, "to_host": 2}, counts     # the loss of each of the 2 passes
            else:
                solver.step(1)
            _, state = solver.snapshot()
            results[backend] = ([b.data.copy() for b in solver.net.learnable_params],
                                [h.copy() for h in solver.history])
    for a, b in zip(results["cuda"][0] + results["cuda"][1], results["cpu"][0] + results["cpu"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert any(np.abs(h).max() > 0 for h in results["cpu"][1])
    bad = undeclared(launches)
    assert not bad, bad
    assert any(name.endswith("sgd_kernel") for name, _ in launches)
    print("cudasim solver OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
