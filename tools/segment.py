"""``crfrnn segment --model M --weights W --image in.jpg --output out.png [--panel [P]]``: label one image.

(``--images SRC --output-dir OUT`` labels a data set: :mod:`crfrnn_np.tools.segment_dataset`.)

Stages, each timed and reported on standard error:

1. **load** the image (PIL, RGB); shrink it so the longer side is at most ``--max-size`` (default: the
   net's input size, 500 for the CRF-RNN deploy net; smaller images are not upscaled);
2. **preprocess**: RGB -> BGR, subtract the mean (B 104.008, G 116.669, R 122.679), zero-pad bottom/right
   to the net's input size (``--any-size``: keep the image's size and reshape the net instead);
3. **net**: build the net and load the weights (by layer name);
4. **forward**, split into the layers before the first MultiStageMeanfield (the FCN: unary scores) and the
   CRF-RNN layer and after;
5. **write**: argmax of the output, crop back to the image, scale a shrunk image's labels back to the input
   size (nearest neighbour), VOC palette PNG (atomic write); ``--panel`` also writes image | unary argmax |
   CRF-RNN result side by side, at the size segmented.
"""
import os
import sys
import time


def add_parser(sub):
    p = sub.add_parser("segment", help="segment an image, or a folder or list of them, into VOC-palette PNGs")
    p.add_argument("--model", required=True, help="net definition (.prototxt), or a shipped net: crfrnn_deploy, demo")
    p.add_argument("--weights", help="trained weights (.caffemodel or .h5); without them the net's fillers")
    p.add_argument("--image", help="input image (any format PIL reads)")
    p.add_argument("--output", help="output label map (.png, VOC palette)")
    p.add_argument("--panel", nargs="?", const="", default=None, metavar="PATH",
                   help="also write image | unary argmax | result side by side (default PATH: OUTPUT_panel.png; "
                        "with --images a folder, default OUTPUT_DIR/panels)")
    p.add_argument("--max-size", type=int, default=None,
                   help="shrink images whose longer side exceeds this (default: the net's input size)")
    p.add_argument("--any-size", action="store_true",
                   help="run the net at the image's own size instead of padding to the net's input size")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    data = p.add_argument_group("data sets")
    data.add_argument("--images", metavar="SRC", help="a folder of images, or a text file of image paths (one a line)")
    data.add_argument("--output-dir", metavar="OUT", help="where --images writes OUT/<stem>.png")
    data.add_argument("--overwrite", action="store_true", help="redo images whose output exists (default: skip)")
    data.add_argument("--workers", type=int, default=1, metavar="N",
                      help="local processes (default 1; 0 = one per core), each on cores/N threads")
    data.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on a dask.distributed cluster instead")
    data.add_argument("--ground-truth", metavar="DIR", help="also score against the label maps of DIR (by stem)")
    data.add_argument("--num-classes", type=int, metavar="C", help="classes scored with --ground-truth (VOC: 21)")
    data.add_argument("--ignore-label", type=int, default=255, help="ground-truth label not scored (default 255)")
    return p


def _input_name(net):
    """The image input: the MultiStageMeanfield's third bottom if there is one, else the first 4-D input."""
    for layer, bottom in zip(net.layers, net.bottom_vecs):
        if layer.type == "MultiStageMeanfield" and bottom[2].name in net.inputs:
            return bottom[2].name
    for name in net.inputs:
        if net.blobs[name].num_axes == 4 and net.blobs[name].shape[1] == 3:
            return name
    from crfrnn_np.errors import NetError
    raise NetError("net '%s' has no 3-channel image input (inputs: %s)" % (net.name, ", ".join(net.inputs)))


def segment(net, rgb, any_size=False, max_size=None, timings=None, unary=True):
    """Run a segmentation net on one RGB image.

    Parameters
    ----------
    net : crfrnn_np.Net
    rgb : ndarray, (h, w, 3) uint8
    any_size : bool
        Reshape the net to the image instead of padding to its input size.
    max_size : int, optional
        Longer-side limit (default: the larger side of the net's input).
    timings : dict, optional
        Filled with seconds per stage.
    unary : bool
        Also return the argmax of the CRF's unary bottom (for the panel). On the ``cuda`` backend that is one
        more copy back from the device (the unary scores), so leave it off when no panel is drawn.

    Returns
    -------
    rgb : ndarray (h', w', 3) uint8
        The image actually segmented (after shrinking).
    labels : ndarray (h', w') uint8
        The CRF-RNN (or the net output's) argmax.
    unary_labels : ndarray (h', w') uint8 or None
        The argmax of the MultiStageMeanfield's unary bottom (None when the net has no such layer, or
        ``unary`` is false).

    Notes
    -----
    On the ``cuda`` backend the image crosses to the device once and the scores of the net's output come back
    once (plus the unary with ``unary``); the blobs are read with ``cpu_data()``, which leaves the device copy
    the current one (the ``data`` property would mark the host copy newer, and the next forward would copy it
    across again). The stage times wait for the device (``cuda.synchronize``), as kernel launches return before
    the kernels finish.
    """
    from crfrnn_np import image
    timings = {} if timings is None else timings
    name = _input_name(net)
    in_h, in_w = net.blobs[name].shape[2:]
    t = time.perf_counter()
    rgb = image.resize_longer_side(rgb, max_size or (None if any_size else max(in_h, in_w)))
    h, w = rgb.shape[:2]
    blob = image.preprocess(rgb, pad_to=None if any_size else (in_h, in_w))
    timings["preprocess"] = time.perf_counter() - t
    crf = next((i for i, layer in enumerate(net.layers) if layer.type == "MultiStageMeanfield"), None)
    if net.blobs[name].shape != blob.shape:
        net.blobs[name].reshape(blob.shape)
        net.reshape()
    net.blobs[name].data = blob
    t = time.perf_counter()
    if crf is None:
        net.forward_prefilled()
        _wait(net)
        timings["forward"] = time.perf_counter() - t
        return rgb, image.labels_from_scores(net.blobs[net.outputs[0]].cpu_data(), h, w), None
    net.forward_from_to(0, crf - 1)
    _wait(net)
    timings["forward (before CRF)"] = time.perf_counter() - t
    unary_labels = image.labels_from_scores(net.bottom_vecs[crf][0].cpu_data(), h, w) if unary else None
    t = time.perf_counter()
    net.forward_from_to(crf, len(net.layers) - 1)
    _wait(net)
    timings["forward (CRF-RNN)"] = time.perf_counter() - t
    result = net.top_vecs[crf][0].name
    scores = net.blobs[net.outputs[0] if result not in net.outputs else result].cpu_data()
    return rgb, image.labels_from_scores(scores, h, w), unary_labels


def _wait(net):
    """Wait for the device's queued kernels (``cuda`` backend), so a stage's time is its own."""
    if net.backend == "cuda":
        from numba import cuda
        cuda.synchronize()


def panel_path(output, panel):
    if panel:
        return panel
    root, ext = os.path.splitext(output)
    return root + "_panel" + (ext or ".png")


def run(args):
    from crfrnn_np import Net, image
    from crfrnn_np.errors import Error
    if (args.image is None) == (args.images is None):
        raise Error("give one --image (with --output) or --images (with --output-dir)")
    if args.images is not None:
        from .segment_dataset import run_dataset
        return run_dataset(args)
    if not args.output:
        raise Error("--image needs --output")
    if args.output_dir or args.workers != 1 or args.scheduler or args.ground_truth or args.overwrite:
        raise Error("--output-dir, --workers, --scheduler, --ground-truth and --overwrite go with --images")
    timings = {}
    t = time.perf_counter()
    rgb = image.load_image(args.image)
    timings["load"] = time.perf_counter() - t
    t = time.perf_counter()
    net = Net(args.model, weights=args.weights, phase="TEST", dtype=args.dtype, backend=args.backend)
    timings["net"] = time.perf_counter() - t
    if not args.weights and any(lr for lr in net.params_lr):
        print("crfrnn: warning: no --weights: the net runs on its fillers, so the labels it writes are meaningless "
              "(the trained CRF-RNN model is TVG_CRFRNN_COCO_VOC.caffemodel; see the README)", file=sys.stderr)
    height, width = rgb.shape[:2]
    rgb, labels, unary_labels = segment(net, rgb, args.any_size, args.max_size, timings,
                                        unary=args.panel is not None)
    t = time.perf_counter()
    full = image.resize_labels(labels, height, width)   # the same rule as --images (segment_worker.label_maps)
    image.write_label_png(full, args.output)
    written = [args.output]
    if args.panel is not None:
        maps = [labels] if unary_labels is None else [unary_labels, labels]
        path = panel_path(args.output, args.panel)
        image.write_panel(path, rgb, *maps)
        written.append(path)
    timings["write"] = time.perf_counter() - t
    for stage in ("load", "net", "preprocess", "forward (before CRF)", "forward (CRF-RNN)", "forward", "write"):
        if stage in timings:
            print("%-22s %9.1f ms" % (stage, 1e3 * timings[stage]), file=sys.stderr)
    print("wrote %s (%d x %d, classes present: %s)"
          % (", ".join(written), full.shape[1], full.shape[0],
             " ".join(str(c) for c in sorted(set(full.ravel().tolist())))))
    return 0
