"""``crfrnn trace``: every mean-field iteration of one CRF layer, recorded to HDF5 (and pictures).

::

    crfrnn trace --model M [--weights W] (--image IMG | --input BLOB=FILE.npy ...) [--label GT.png|GT.npy]
                 [--layer NAME] [--index K] [--dtype float32|float64] --output trace.h5 [--panels DIR]

The named MultiStageMeanfield layer (default: the first) runs its STEPS engine, the step layers themselves,
and :mod:`crfrnn_np.trace` reads their blobs: Q_t, the two messages, the pairwise term, the logits, the free
energy, and with ``--label`` the loss and its gradient through each iteration. One table row per
iteration goes to standard output; ``--panels DIR`` writes PNG pictures and plots (matplotlib, the
``plots`` extra) and always the numbers as ``DIR/trace.csv``.

Inputs: ``--image`` reads a picture into the net's image input as ``crfrnn segment`` does (shrunk to the
input size, BGR minus the mean, zero-padded); ``--input BLOB=FILE.npy`` sets any input (a missing batch axis
is added). Every input of the net must be given one way or the other. A label of the un-padded image's size
is padded with 255 (ignored).
"""
import os
import sys

import numpy as np


def add_parser(sub):
    p = sub.add_parser("trace", help="record every mean-field iteration of a CRF layer (Q, messages, energy, "
                                     "gradients) to HDF5")
    p.add_argument("--model", required=True, help="net definition (.prototxt), or a shipped net: crfrnn_deploy, demo")
    p.add_argument("--weights", help="trained weights (.caffemodel or .h5); without them the net's fillers")
    p.add_argument("--image", help="input picture for the net's image input (any format PIL reads)")
    p.add_argument("--input", action="append", default=[], metavar="BLOB=FILE.npy",
                   help="data of a net input from a .npy file (repeatable)")
    p.add_argument("--label", help="ground truth (palette/grey PNG or .npy of class indices; 255 = ignore)")
    p.add_argument("--layer", help="the MultiStageMeanfield layer to trace (default: the first)")
    p.add_argument("--index", type=int, default=0, help="which image of the batch to record (default 0)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--output", required=True, help="HDF5 file to write (atomically)")
    p.add_argument("--panels", metavar="DIR", help="also write PNG pictures and plots (and trace.csv) here")
    return p


def _load_npy(path, what):
    from crfrnn_np.errors import Error
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise Error("%s: cannot read %s: %s" % (path, what, exc)) from None


def set_inputs(net, image_path=None, inputs=(), max_size=None):
    """Fill the net's inputs from ``--image`` and ``--input BLOB=FILE`` arguments.

    Returns
    -------
    (rgb, (h, w)) or (None, None)
        The picture as segmented and its size before padding, when an image was given.
    """
    from crfrnn_np import image
    from crfrnn_np.errors import NetError, ShapeError
    from .segment import _input_name
    given = {}
    for item in inputs:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise NetError("--input expects BLOB=FILE.npy, got '%s'" % item)
        if name not in net.inputs:
            raise NetError("--input %s: '%s' is not an input of net '%s' (inputs: %s)"
                           % (item, name, net.name, ", ".join(net.inputs)))
        value = _load_npy(path, "input '%s'" % name)
        blob = net.blobs[name]
        if value.ndim == blob.num_axes - 1 and value.shape == blob.shape[1:]:
            value = value[None]
        if value.shape != blob.shape:
            raise ShapeError("--input %s: the array has shape %s, input '%s' has shape %s"
                             % (item, "x".join(map(str, value.shape)), name, "x".join(map(str, blob.shape))))
        if value.dtype.kind not in "fiub" or not np.all(np.isfinite(value)):
            raise ShapeError("--input %s: expected finite numbers, got %s" % (item, value.dtype))
        given[name] = value
    rgb = size = None
    if image_path:
        name = _input_name(net)
        if name in given:
            raise NetError("input '%s' is given twice (--image and --input)" % name)
        in_h, in_w = net.blobs[name].shape[2:]
        rgb = image.resize_longer_side(image.load_image(image_path), max_size or max(in_h, in_w))
        size = rgb.shape[:2]
        given[name] = image.preprocess(rgb, pad_to=(in_h, in_w))
    missing = [name for name in net.inputs if name not in given]
    if missing:
        raise NetError("net '%s' needs data for input(s) %s (--image for the picture, --input BLOB=FILE.npy "
                       "for the others)" % (net.name, ", ".join(missing)))
    for name, value in given.items():
        net.blobs[name].data = value
    return rgb, size


def read_label(path):
    """A label map from a PNG (palette indices or grey values) or a .npy file."""
    from crfrnn_np import image
    if path.lower().endswith(".npy"):
        return _load_npy(path, "label")
    try:
        return image.read_label_png(path)
    except OSError as exc:
        from crfrnn_np.errors import Error
        raise Error("%s: cannot read label: %s" % (path, exc)) from None


def run(args):
    from crfrnn_np import Net, models, proto
    from crfrnn_np.trace import check_label, trace_layer, use_steps_engine
    from crfrnn_np.trace_panels import write_panels
    param = models.read_net(args.model)
    name = use_steps_engine(param, args.layer)
    net = Net(param, weights=args.weights, phase="TEST", dtype=args.dtype, backend=args.backend)
    crf_blobs = {id(b) for b in net.layer_dict[name].blobs}
    if not args.weights and any(lr and id(b) not in crf_blobs for b, lr in zip(net.learnable_params, net.params_lr)):
        print("crfrnn: warning: no --weights: the layers before the CRF run on their fillers, so the unary is "
              "not a trained net's", file=sys.stderr)
    rgb, size = set_inputs(net, args.image, args.input)
    label = None
    if args.label:
        unary = net.bottom_vecs[net.layer_names.index(name)][0]
        label = check_label(read_label(args.label), unary.shape[1], unary.shape[2:], size)
    trace = trace_layer(net, name, args.index, label)
    trace.attrs.update(model=os.path.abspath(models.resolve(args.model)),
                       weights=os.path.abspath(args.weights) if args.weights else "none (the net's fillers)",
                       inputs=", ".join(([os.path.abspath(args.image)] if args.image else []) + list(args.input)))
    if size is not None:
        trace.attrs["image_size"] = np.asarray(size, np.int64)       # the picture before padding
    trace.write_hdf5(args.output)
    print(trace.table())
    summary = "T = %d, wrote %s" % (trace.num_iterations, args.output)
    if "loss" in trace.attrs:
        summary = "loss %.6g (SoftmaxWithLoss, VALID, ignore 255); |dloss/dU| = %.4g; " % (
            trace.attrs["loss"], float(np.linalg.norm(trace["unary_grad"].astype(np.float64)))) + summary
    print(summary)
    if not trace.attrs["energy_decrease_guaranteed"]:
        print("energy: F need not decrease here (%s)" % trace.attrs["energy_caveats"])
    if args.panels:
        written, note = write_panels(trace, args.panels)
        if note:
            print(note, file=sys.stderr)
        print("wrote %d file(s) in %s" % (len(written), args.panels))
    return 0
