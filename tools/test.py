"""``crfrnn test --model M --weights W [--iterations N]``: score a net, as ``caffe test``.

Builds the TEST-phase net, loads the weights and runs ``N`` forward passes (default 50), each reading its own
batch from the net's data layers. For every pass and every element of every output blob it prints
``Batch i, name = v``; then ``Loss: x`` (the mean weighted loss per pass) and for each output element its
mean over the passes, ``name = mean``, with ``(* w = w*mean loss)`` appended for loss outputs.
"""
import sys

import numpy as np

from crfrnn_np.errors import Error


def add_parser(sub):
    p = sub.add_parser("test", help="score a net over N batches (as caffe test)")
    p.add_argument("--model", required=True, help="net definition (.prototxt), or a shipped net: crfrnn_deploy, demo")
    p.add_argument("--weights", help="trained weights (.caffemodel or .h5; comma-separated list)")
    p.add_argument("--iterations", type=int, default=50, help="forward passes (default 50)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--level", type=int, default=0, help="net state level")
    p.add_argument("--stage", default="", help="net state stages (comma-separated)")
    return p


def output_loss_weights(net):
    """``{blob name: loss weight}`` for the tops that carry one."""
    names = {id(b): n for n, b in net.blobs.items()}
    weights = {}
    for layer, tops in zip(net.layers, net.top_vecs):
        for blob, w in zip(tops, layer.loss_weights):
            if w:
                weights[names.get(id(blob), blob.name)] = float(w)
    return weights


def test_net(net, iterations, out=None):
    """Run ``iterations`` forward passes of ``net``, print Caffe's lines; return ``(mean loss, {name: mean})``."""
    out = sys.stdout if out is None else out   # looked up now: tests swap sys.stdout
    if iterations < 1:
        raise Error("--iterations must be at least 1, got %d" % iterations)
    weights = output_loss_weights(net)
    sums = {}
    loss = 0.0
    for i in range(iterations):
        loss += float(net.forward_prefilled())
        for name in net.outputs:
            values = np.array(net.blobs[name].data, dtype=np.float64).reshape(-1)
            sums[name] = sums[name] + values if name in sums else values
            for v in values:
                print("Batch %d, %s = %g" % (i, name, v), file=out)
    loss /= iterations
    print("Loss: %g" % loss, file=out)
    means = {}
    for name in net.outputs:
        m = sums[name] / iterations
        w = weights.get(name, 0.0)
        for v in m:
            suffix = " (* %g = %g loss)" % (w, w * v) if w else ""
            print("%s = %g%s" % (name, v, suffix), file=out)
        means[name] = float(m[0]) if m.size == 1 else m
    out.flush()
    return loss, means


def run(args):
    from crfrnn_np.net import Net
    stages = [s for s in args.stage.split(",") if s]
    weights = [w for w in args.weights.split(",") if w] if args.weights else None
    if not weights:
        print("crfrnn: warning: no --weights given; testing the net as initialised by its fillers",
              file=sys.stderr)
    net = Net(args.model, weights=weights, phase="TEST", dtype=args.dtype, backend=args.backend,
              level=args.level, stages=stages)
    print("Running for %d iterations." % args.iterations, flush=True)
    test_net(net, args.iterations)
    return 0
