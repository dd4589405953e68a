"""``crfrnn time --model M [--iterations N] [--phase TRAIN|TEST]``: per-layer timing, as ``caffe time``.

One forward (``Initial loss``) and one backward warm up the net (and numba's compiled kernels); then each
iteration times every layer's forward in order and every layer's backward in reverse. The report has Caffe's
lines: ``Iteration: j forward-backward time: X ms.``, then per layer ``name\\tforward: x ms.`` and
``name\\tbackward: y ms.``, then the average forward, backward and forward-backward passes and the total.
"""
import sys
import time as _time

import numpy as np


def add_parser(sub):
    p = sub.add_parser("time", help="time each layer's forward and backward")
    p.add_argument("--model", required=True, help="net definition (.prototxt), or a shipped net: crfrnn_deploy, demo")
    p.add_argument("--weights", help="optional weights (.caffemodel or .h5)")
    p.add_argument("--iterations", type=int, default=50, help="timed iterations (default 50)")
    p.add_argument("--phase", choices=["TRAIN", "TEST"], default="TRAIN")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    return p


def time_net(net, iterations, out=None):
    """Time ``net`` as ``caffe time`` does; return (forward ms, backward ms) per-layer averages."""
    out = sys.stdout if out is None else out   # looked up now: tests swap sys.stdout
    from crfrnn_np.errors import Error
    if iterations < 1:
        raise Error("--iterations must be at least 1, got %d" % iterations)
    rng = np.random.default_rng(0)
    for name in net.inputs:
        blob = net.blobs[name]
        blob.data = rng.standard_normal(blob.shape)
    n = len(net.layers)
    print("Performing Forward", file=out)
    loss = net.forward_prefilled()
    print("Initial loss: %g" % loss, file=out)
    print("Performing Backward", file=out)
    net.backward_from_to(n - 1, 0)
    fwd = np.zeros(n)
    bwd = np.zeros(n)
    print("*** Benchmark begins ***", file=out)
    print("Testing for %d iterations." % iterations, file=out)
    t_total = _time.perf_counter()
    fwd_total = bwd_total = 0.0
    for j in range(iterations):
        t_iter = _time.perf_counter()
        t0 = _time.perf_counter()
        for i in range(n):
            t = _time.perf_counter()
            net.layers[i].forward(net.bottom_vecs[i], net.top_vecs[i])
            fwd[i] += _time.perf_counter() - t
        fwd_total += _time.perf_counter() - t0
        t0 = _time.perf_counter()
        for i in reversed(range(n)):
            t = _time.perf_counter()
            net.layers[i].backward(net.top_vecs[i], net.bottom_need_backward[i], net.bottom_vecs[i])
            bwd[i] += _time.perf_counter() - t
        bwd_total += _time.perf_counter() - t0
        print("Iteration: %d forward-backward time: %.3f ms." % (j + 1, 1e3 * (_time.perf_counter() - t_iter)),
              file=out)
        if out is sys.stdout:
            print("\r  [%d/%d]" % (j + 1, iterations), end="", file=sys.stderr, flush=True)
    if out is sys.stdout:
        print(file=sys.stderr)
    total = _time.perf_counter() - t_total
    print("Average time per layer: ", file=out)
    for i, name in enumerate(net.layer_names):
        print("%10s\tforward: %.5g ms." % (name, 1e3 * fwd[i] / iterations), file=out)
        print("%10s\tbackward: %.5g ms." % (name, 1e3 * bwd[i] / iterations), file=out)
    print("Average Forward pass: %.5g ms." % (1e3 * fwd_total / iterations), file=out)
    print("Average Backward pass: %.5g ms." % (1e3 * bwd_total / iterations), file=out)
    print("Average Forward-Backward: %.5g ms." % (1e3 * (fwd_total + bwd_total) / iterations), file=out)
    print("Total Time: %.5g ms." % (1e3 * total), file=out)
    print("*** Benchmark ends ***", file=out)
    return fwd / iterations * 1e3, bwd / iterations * 1e3


def run(args):
    from crfrnn_np import Net
    net = Net(args.model, weights=args.weights, phase=args.phase, dtype=args.dtype, backend=args.backend)
    time_net(net, args.iterations)
    return 0
