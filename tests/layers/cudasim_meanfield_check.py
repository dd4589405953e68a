"""MultiStageMeanfield on the ``cuda`` backend under the numba.cuda simulator (run by
test_multi_stage_meanfield.py in a subprocess with NUMBA_ENABLE_CUDASIM=1, set before numba is imported).

DEFAULT resolves to STEPS there: the step layers, their lattice filters on the (simulated) device. The
result must equal the CPU's FUSED and STEPS engines, forward and backward, in float64. (The FUSED engine on
the device has its own check, tests/fused/cudasim_meanfield_cuda_check.py.)"""
import os
import sys

import numpy as np


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np import Net, NetError, proto
    text = """name: "m" force_backward: true
layer { name: "in" type: "Input" top: "unary" top: "Q0" top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 4 dim: 5 } shape { dim: 1 dim: 3 dim: 4 dim: 5 }
                shape { dim: 1 dim: 3 dim: 4 dim: 5 } } }
layer { name: "crf" type: "MultiStageMeanfield" bottom: "unary" bottom: "Q0" bottom: "data" top: "pred"
  multi_stage_meanfield_param { num_iterations: 2 theta_alpha: 4 theta_beta: 30 theta_gamma: 2 %s } }"""
    rng = np.random.default_rng(3)
    unary = rng.standard_normal((1, 3, 4, 5))
    image = rng.uniform(-100, 100, (1, 3, 4, 5))
    g = rng.standard_normal(unary.shape)
    perturb = [0.2 * rng.standard_normal((3, 3)) for _ in range(3)]
    results = {}
    for key, backend, engine in (("cuda", "cuda", ""), ("cpu-fused", "cpu", "engine: FUSED"),
                                 ("cpu-steps", "cpu", "engine: STEPS")):
        net = Net(proto.parse(text % engine), phase="TRAIN", dtype="float64", backend=backend)
        layer = net.layer_dict["crf"]
        assert layer.engine == ("STEPS" if backend == "cuda" else engine.split()[-1]), layer.engine
        for blob, p in zip(layer.blobs, perturb):
            blob.data[0, 0] += p
        out = net.forward(unary=unary, Q0=unary + 0.5, data=image)["pred"].copy()
        diffs = net.backward(pred=g)
        results[key] = [out, diffs["unary"].copy(), diffs["Q0"].copy()] + [b.diff.copy() for b in layer.blobs]
    for key in ("cpu-fused", "cpu-steps"):
        for a, b in zip(results["cuda"], results[key]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * max(1.0, np.abs(b).max()))
    # FUSED runs on the device too (fused/meanfield_cuda.py, tested in tests/fused/test_meanfield_cuda.py); untied
    # it is an error on every backend
    assert Net(proto.parse(text % "engine: FUSED"), backend="cuda").layer_dict["crf"].engine == "FUSED"
    try:
        Net(proto.parse(text % "engine: FUSED untied: true"), backend="cuda")
    except NetError as exc:
        assert "does not run untied" in str(exc)
    else:
        raise AssertionError("FUSED with untied: true must be an error")
    print("cudasim meanfield OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
