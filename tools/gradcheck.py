"""``crfrnn gradcheck --model M [--layer L]``: finite-difference check of a net, layer by layer.

The net is built in float64 (the check's own precision) with random inputs; each layer with a backward is
checked along random directions (or exhaustively with ``--exhaustive``, Caffe's mode) and a table of the
largest relative errors is printed. Bottoms that carry no gradient by design (a loss's labels, the image of
the CRF layers) are skipped, and the table says which and why. Exit status 1 when any layer fails the
threshold.
"""
import numpy as np


def add_parser(sub):
    p = sub.add_parser("gradcheck", help="check every layer's backward against finite differences (float64)")
    p.add_argument("--model", required=True, help="net definition (.prototxt), or a shipped net: crfrnn_deploy, demo")
    p.add_argument("--weights", help="optional weights (.caffemodel or .h5)")
    p.add_argument("--layer", action="append", help="check only this layer (repeatable)")
    p.add_argument("--phase", choices=["TRAIN", "TEST"], default="TRAIN")
    # 1e-5 balances the central difference's O(h²) truncation (3.7e-5 relative at h = 1e-3 through the ten
    # softmaxes of the demo net's CRF layer) against float64 rounding (~1e-16·|E|/h)
    p.add_argument("--stepsize", type=float, default=1e-5, help="finite-difference step (default 1e-5)")
    p.add_argument("--threshold", type=float, default=1e-6)
    p.add_argument("--exhaustive", action="store_true", help="every element (Caffe's mode; slow)")
    p.add_argument("--directions", type=int, default=3, help="random directions per layer (default 3)")
    p.add_argument("--seed", type=int, default=1701)
    p.add_argument("--shape", action="append", default=[], metavar="BLOB=N,C,H,W",
                   help="reshape an input first (repeatable), e.g. data=1,3,64,64 to check a 500 x 500 net small")
    return p


def _reshape_inputs(net, items):
    """Apply ``--shape BLOB=N,C,H,W`` arguments (one-line errors for a bad blob or shape)."""
    from crfrnn_np import NetError, ShapeError
    for item in items:
        name, sep, dims = item.partition("=")
        if not sep or name not in net.inputs:
            raise NetError("--shape %s: expected BLOB=N,C,H,W with BLOB one of the net's inputs (%s)"
                           % (item, ", ".join(net.inputs)))
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise ShapeError("--shape %s: the dimensions must be integers" % item) from None
        if len(shape) != net.blobs[name].num_axes or min(shape) < 1:
            raise ShapeError("--shape %s: input '%s' needs %d positive dimensions"
                             % (item, name, net.blobs[name].num_axes))
        net.blobs[name].reshape(shape)
    if items:
        net.reshape()


def run(args):
    from crfrnn_np import Net, NetError
    from crfrnn_np.gradcheck import GradientChecker, GradientCheckError
    net = Net(args.model, weights=args.weights, phase=args.phase, dtype="float64", backend=args.backend)
    if args.layer:
        unknown = [name for name in args.layer if name not in net.layer_dict]
        if unknown:
            raise NetError("no layer named %s in %s (layers: %s)"
                           % (", ".join(unknown), args.model, ", ".join(net.layer_names)))
    _reshape_inputs(net, args.shape)
    rng = np.random.default_rng(args.seed)
    for name in net.inputs:
        blob = net.blobs[name]
        blob.data = rng.standard_normal(blob.shape)
    checker = GradientChecker(args.stepsize, args.threshold, seed=args.seed)
    failed = []
    print("%-24s %-22s %14s  %s" % ("layer", "type", "max rel. err", "result"))
    for i, layer in enumerate(net.layers):
        if args.layer and layer.name not in args.layer:
            continue
        try:
            rows = checker.check_net(net, layer_names=[layer.name],
                                     mode="exhaustive" if args.exhaustive else "directional",
                                     n_directions=args.directions)
            for lname, ltype, err, skipped, notes in rows:
                print("%-24s %-22s %14.3e  ok" % (lname, ltype, err))
                for index, blob, why in skipped:
                    print("    skipped bottom %d '%s': no gradient by design (%s)" % (index, blob, why))
                for note in notes:
                    print("    " + note)
        except GradientCheckError as e:
            failed.append(layer.name)
            print("%-24s %-22s %14s  FAILED" % (layer.name, layer.type, "-"))
            print("    " + str(e).replace("\n", "\n    "))
    print("%d layer(s) failed" % len(failed) if failed else "all checked layers pass (threshold %g)"
          % args.threshold)
    return 1 if failed else 0
