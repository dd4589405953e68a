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


class Timer:
    """Caffe's Timer: wall clock on the CPU; CUDA events on the ``cuda`` backend (kernels run asynchronously,
    so a host clock would time the launches, not the work). Under the simulator, whose events record no time,
    the wall clock again.

    ``start()`` then ``seconds()`` (which waits for the device's work recorded so far)."""

    def __init__(self, backend):
        from crfrnn_np.backend import simulator_on
        self.events = backend == "cuda" and not simulator_on()
        self._start = None

    def start(self):
        if self.events:
            from numba import cuda
            self._start = cuda.event()
            self._start.record()
        else:
            self._start = _time.perf_counter()

    def seconds(self):
        if not self.events:
            return _time.perf_counter() - self._start
        from numba import cuda
        end = cuda.event()
        end.record()
        end.synchronize()
        return self._start.elapsed_time(end) / 1e3


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
    layer_timer, pass_timer, iter_timer = Timer(net.backend), Timer(net.backend), Timer(net.backend)
    print("*** Benchmark begins ***", file=out)
    print("Testing for %d iterations%s." % (iterations, " (CUDA events)" if layer_timer.events else ""), file=out)
    t_total = _time.perf_counter()
    fwd_total = bwd_total = 0.0
    for j in range(iterations):
        iter_timer.start()
        pass_timer.start()
        for i in range(n):
            layer_timer.start()
            net.layers[i].forward(net.bottom_vecs[i], net.top_vecs[i])
            fwd[i] += layer_timer.seconds()
        fwd_total += pass_timer.seconds()
        pass_timer.start()
        for i in reversed(range(n)):
            layer_timer.start()
            net.layers[i].backward(net.top_vecs[i], net.bottom_need_backward[i], net.bottom_vecs[i])
            bwd[i] += layer_timer.seconds()
        bwd_total += pass_timer.seconds()
        print("Iteration: %d forward-backward time: %.3f ms." % (j + 1, 1e3 * iter_timer.seconds()), file=out)
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
