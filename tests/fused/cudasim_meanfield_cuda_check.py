"""Under the numba.cuda simulator: MultiStageMeanfield's FUSED engine on the ``cuda`` backend
(fused/meanfield_cuda.py) against STEPS on the device and FUSED on the CPU, its float64 gradient, the
host <-> device transfers of a forward and the kernel launches per iteration (run by test_meanfield_cuda.py in
a subprocess with NUMBA_ENABLE_CUDASIM=1, set before numba is imported).

Prints one line per check; the test module asserts on them. Sizes are tiny (the simulator runs about two
thousand GPU threads a second): 8 x 8 images, 3 classes, T = 2, a batch of 2 different images.
"""
import collections
import contextlib
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import counting_transfers  # noqa: E402  (the transfer counter of the device tests)

#: θα, θβ, θγ: a colour range of ±30 at θβ = 30 keeps the bilateral lattice of an 8 x 8 image near 100
#: vertices (the simulator's cost is in the vertex threads of the blurs).
THETAS = (8.0, 30.0, 3.0)
COLOUR = 30.0


def net_text(n, c, h, w, T, engine):
    """A net with only the CRF layer: an Input of unary, Q0 and the image, then MultiStageMeanfield."""
    shape = "shape { dim: %d dim: %d dim: %d dim: %d }" % (n, c, h, w)
    image = "shape { dim: %d dim: 3 dim: %d dim: %d }" % (n, h, w)
    return ('name: "crf" force_backward: true\n'
            'layer { name: "in" type: "Input" top: "unary" top: "Q0" top: "data" input_param { %s %s %s } }\n'
            'layer { name: "crf" type: "MultiStageMeanfield" bottom: "unary" bottom: "Q0" bottom: "data" '
            'top: "pred" multi_stage_meanfield_param { num_iterations: %d theta_alpha: %g theta_beta: %g '
            'theta_gamma: %g engine: %s } }' % ((shape, shape, image, T) + THETAS + (engine,)))


def inputs(rng, n, c, h, w):
    """Unary, Q0 (different from the unary), an image per batch item (each its own) and a top diff."""
    unary = 2.0 * rng.standard_normal((n, c, h, w))
    return {"unary": unary, "Q0": unary + rng.standard_normal((n, c, h, w)),
            "data": rng.uniform(-COLOUR, COLOUR, (n, 3, h, w))}


@contextlib.contextmanager
def counting_launches():
    """Count the launches of every ``gpu_kernel`` made inside the block: a Counter by short kernel name
    (:func:`crfrnn_np.cuda_kernel.recording` collects a set of launch types, not how many)."""
    from crfrnn_np.cuda_kernel import GpuKernel
    counts = collections.Counter()
    saved = GpuKernel.__getitem__

    def getitem(self, config):
        run = saved(self, config)

        def counted(*args):
            counts[self.name.rsplit(".", 1)[-1]] += 1
            run(*args)

        return counted

    GpuKernel.__getitem__ = getitem
    try:
        yield counts
    finally:
        GpuKernel.__getitem__ = saved


def make_net(text, backend, dtype, phase, weights, cache=None):
    from crfrnn_np import Net, proto
    net = Net(proto.parse(text), phase=phase, dtype=dtype, backend=backend, lattice_cache=cache)
    layer = net.layer_dict["crf"]
    for blob, value in zip(layer.blobs, weights):
        blob.data[0, 0] = value
    net.params_to_device()
    return net, layer


def compare():
    """FUSED on cuda against STEPS on cuda and FUSED on cpu: the top, the two bottom diffs and the three
    parameter diffs (non-diagonal parameters, so that every class interacts), with float32-representable
    inputs and parameters.

    float64: TRAIN phase, the three engines to 1e-10, the transfers of the FUSED net's forwards and backward
    counted. float32: the FUSED cuda net in the TEST phase (its forward keeps nothing, the backward runs it
    again) with its parameter diffs prefilled with 1 (they must accumulate), to 1e-5 against FUSED on cpu in
    float32 and against the float64 STEPS results on cuda (a float32 STEPS run on the simulator would add
    seven seconds to the suite and test nothing the float64 one does not)."""
    from crfrnn_np.layers.permutohedral_filter import LatticeCache
    n, c, h, w, T = 2, 3, 8, 8, 2
    rng = np.random.default_rng(5)
    feed = {k: v.astype(np.float32) for k, v in inputs(rng, n, c, h, w).items()}
    g = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weights = [(np.diag(d) + 0.3 * rng.standard_normal((c, c))).astype(np.float32)
               for d in ([3.0] * c, [5.0] * c, [-1.0] * c)]
    runs = (("float64", "cuda FUSED", "cuda", "FUSED"), ("float64", "cuda STEPS", "cuda", "STEPS"),
            ("float64", "cpu FUSED", "cpu", "FUSED"), ("float32", "cuda FUSED", "cuda", "FUSED"),
            ("float32", "cpu FUSED", "cpu", "FUSED"))
    caches = {dtype: LatticeCache("cuda") for dtype in ("float32", "float64")}   # one build for both device nets
    results = {}
    for dtype, key, backend, engine in runs:
        phase = "TEST" if key == "cuda FUSED" and dtype == "float32" else "TRAIN"
        net, layer = make_net(net_text(n, c, h, w, T, engine), backend, dtype, phase, weights,
                              caches[dtype] if backend == "cuda" else None)
        assert layer.engine == engine, layer.engine
        prefill = key == "cuda FUSED" and dtype == "float32"
        if prefill:
            for blob in layer.blobs:
                blob.diff[...] = 1
        if key == "cuda FUSED" and dtype == "float64":
            with counting_transfers() as first:
                net.forward(**feed)
            with counting_transfers() as again:
                out = net.forward(**feed)["pred"].copy()
            with counting_transfers() as back:
                diffs = net.backward(pred=g)
            print("transfers %s: first forward %s, forward %s, backward %s" % (dtype, dict(first), dict(again),
                                                                               dict(back)))
        else:
            out = net.forward(**feed)["pred"].copy()
            diffs = net.backward(pred=g)
        params = [b.diff[0, 0] - (1 if prefill else 0) for b in layer.blobs]
        results[dtype, key] = [out, diffs["unary"].copy(), diffs["Q0"].copy()] + params
    names = ["top", "unary diff", "Q0 diff", "W_s diff", "W_b diff", "mu diff"]
    for (dtype, other), tol in ((("float64", "cuda STEPS"), 1e-10), (("float64", "cpu FUSED"), 1e-10),
                                (("float32", "cpu FUSED"), 1e-5), (("float64", "cuda STEPS"), 1e-5)):
        fused = results["float64" if tol < 1e-6 else "float32", "cuda FUSED"]
        for name, a, b in zip(names, fused, results[dtype, other]):
            scale = max(1.0, float(np.abs(b).max()))
            err = float(np.abs(a.astype(np.float64) - b).max()) / scale
            assert err <= tol, (dtype, other, name, err, tol)
            assert np.abs(b).max() > 1e-3, (other, name)          # a real gradient, not zeros
        print("compare FUSED cuda %s against %s %s to %g OK" % ("float64" if tol < 1e-6 else "float32", other,
                                                                dtype, tol))


def launches_per_iteration():
    """Kernel launches of one forward and one backward of a 1 x 3 x 2 x 2 batch at T = 2 and T = 3, both
    engines (lattices cached): their difference is one iteration's launches."""
    from crfrnn_np.layers.permutohedral_filter import LatticeCache
    rng = np.random.default_rng(7)
    feed = inputs(rng, 1, 3, 2, 2)
    weights = [np.eye(3) * 3, np.eye(3) * 5, -np.eye(3)]
    counts = {}
    cache = LatticeCache("cuda")
    for engine in ("STEPS", "FUSED"):
        for T in (2, 3):
            net, _ = make_net(net_text(1, 3, 2, 2, T, engine), "cuda", "float64", "TRAIN", weights, cache)
            net.forward(**feed)                                     # lattices built, buffers made
            with counting_launches() as forward:
                net.forward(**feed)
            with counting_launches() as backward:
                net.backward(pred=np.ones((1, 3, 2, 2)))
            counts[engine, T] = sum(forward.values()), sum(backward.values())
    for engine in ("STEPS", "FUSED"):
        fwd = counts[engine, 3][0] - counts[engine, 2][0]
        bwd = counts[engine, 3][1] - counts[engine, 2][1]
        print("launches per iteration %s: forward %d backward %d (T=2 totals: forward %d backward %d)"
              % (engine, fwd, bwd, counts[engine, 2][0], counts[engine, 2][1]))


def gradient():
    """float64 directional gradient check of the FUSED cuda layer (4 x 4, C = 2, T = 2, non-diagonal
    parameters) over both bottoms and the three parameters; then backwards with one bottom at a time give the
    same diffs as with both, and leave the other bottom's diff alone."""
    from crfrnn_np.gradcheck import GradientChecker
    from crfrnn_np.testing import make_layer
    rng = np.random.default_rng(9)
    feed = inputs(rng, 1, 2, 4, 4)
    snippet = net_text(1, 2, 4, 4, 2, "FUSED").split("\n")[2]
    layer, bottom, top = make_layer(snippet, [feed["unary"], feed["Q0"], feed["data"]], dtype=np.float64,
                                    backend="cuda")
    assert type(layer._engine).__name__ == "FusedCudaEngine"
    for blob in layer.blobs:
        blob.data[0, 0] += 0.3 * rng.standard_normal((2, 2))
    checker = GradientChecker(stepsize=1e-5, threshold=1e-6)
    err = checker.check_gradient_directional(layer, bottom, top, n_directions=2)
    print("gradient check float64: largest relative error %.2e" % err)
    top[0].diff = rng.standard_normal(top[0].shape)
    layer.backward(top, [True, True, False], bottom)
    both = [bottom[0].diff.copy(), bottom[1].diff.copy()]
    for k in (0, 1):
        for b in bottom[:2]:
            b.diff[...] = 7.0
        layer.backward(top, [k == 0, k == 1, False], bottom)
        np.testing.assert_allclose(bottom[k].diff, both[k], rtol=0, atol=1e-13)
        assert np.all(bottom[1 - k].diff == 7.0)
    print("propagate_down OK")


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np.cuda_kernel import recording
    from crfrnn_np.testing import assert_declared
    with recording() as launches:
        compare()
        launches_per_iteration()
        gradient()
    assert_declared(launches)
    print("launched:", " ".join(sorted(name.rsplit(".", 1)[-1] for name in {n for n, _ in launches})))
    print("cudasim fused meanfield OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
