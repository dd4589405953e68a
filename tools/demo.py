"""``crfrnn demo [--output out/demo_panel.png]``: CRF-RNN refining a coarse FCN-like unary on a shipped image.

The data (``models/demo/``, written by ``tools/make_demo_data.py``): a 200 x 160 synthetic photo with three
objects, its ground-truth label mask, and a coarse (1/8 resolution, blurred, noisy) 21-class score map such
as an FCN's score layer produces. The net (``models/demo.prototxt``) upsamples the scores with FCN's
bilinear Deconvolution, crops them to the image and runs the CRF-RNN layer (T = 10, Potts initialisation
W_s = 3 I, W_b = 5 I, μ = −I). The demo prints the mean IoU of the unary's argmax and of the CRF-RNN
result against the mask, the time of each stage, and writes the panel image | unary argmax | CRF-RNN
result (plus the label map next to it).

To run the real trained model instead: download ``TVG_CRFRNN_COCO_VOC.caffemodel`` (see the README) and run
``crfrnn segment --model models/crfrnn_deploy.prototxt --weights TVG_CRFRNN_COCO_VOC.caffemodel --image
photo.jpg --output out.png --panel``.
"""
import os
import sys
import time

import numpy as np

NUM_CLASSES = 21


def add_parser(sub):
    p = sub.add_parser("demo", help="CRF-RNN on the shipped image: panel picture and mean IoU before/after")
    p.add_argument("--output", default=os.path.join("out", "demo_panel.png"),
                   help="panel picture to write (default out/demo_panel.png); the label map goes next to it")
    p.add_argument("--iterations", type=int, default=None, help="override the number of mean-field iterations")
    return p


def run(args):
    from crfrnn_np import Net, image, models
    from crfrnn_np.errors import Error
    timings = {}
    t = time.perf_counter()
    try:
        rgb = image.load_image(models.path("demo", "image.png"))
        truth = image.read_label_png(models.path("demo", "mask.png"))
        coarse = np.load(models.path("demo", "coarse_unary.npy"))[None]
    except OSError as exc:
        raise Error("demo data missing in %s: %s (run tools/make_demo_data.py)" % (models.path(), exc)) from None
    net_param = models.read_net("demo")
    if args.iterations is not None:
        crf = [lp for lp in net_param.layer if lp.type == "MultiStageMeanfield"][0]
        crf.multi_stage_meanfield_param.num_iterations = args.iterations
    data = image.preprocess(rgb)
    timings["load"] = time.perf_counter() - t
    t = time.perf_counter()
    net = Net(net_param, phase="TEST", backend=args.backend)
    timings["net"] = time.perf_counter() - t
    crf = next(i for i, layer in enumerate(net.layers) if layer.type == "MultiStageMeanfield")
    net.blobs["coarse"].data = coarse
    net.blobs["data"].data = data
    t = time.perf_counter()
    net.forward_from_to(0, crf - 1)
    timings["forward (upsample unary)"] = time.perf_counter() - t
    before = image.labels_from_scores(net.bottom_vecs[crf][0].data)
    t = time.perf_counter()
    net.forward_from_to(crf, len(net.layers) - 1)
    timings["forward (CRF-RNN, T=%d)" % net.layers[crf].num_iterations] = time.perf_counter() - t
    after = image.labels_from_scores(net.top_vecs[crf][0].data)
    t = time.perf_counter()
    image.write_panel(args.output, rgb, before, after)
    root, _ = os.path.splitext(args.output)
    labels_path = root + "_labels.png"
    image.write_label_png(after, labels_path)
    timings["write"] = time.perf_counter() - t
    for stage, seconds in timings.items():
        print("%-28s %9.1f ms" % (stage, 1e3 * seconds), file=sys.stderr)
    iou_before = image.mean_iou(before, truth, NUM_CLASSES)
    iou_after = image.mean_iou(after, truth, NUM_CLASSES)
    print("mean IoU, unary argmax (FCN-like input): %.4f" % iou_before)
    print("mean IoU, CRF-RNN result:                %.4f" % iou_after)
    print("pixel accuracy: %.4f -> %.4f" % (float(np.mean(before == truth)), float(np.mean(after == truth))))
    print("wrote %s (image | unary argmax | CRF-RNN) and %s" % (args.output, labels_path))
    return 0
