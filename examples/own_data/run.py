"""The own-data recipe end to end (docs/training.md): your images, your classes, FCN + CRF-RNN.

Steps, each printed with the command it stands for:

1. **data**: writes ``data/images/*.jpg`` (synthetic scenes) and ``data/labels/*.png`` (VOC-palette PNGs
   whose indices are the classes 0 background, 1 disc, 2 square, 3 triangle), and the lists
   ``data/train.txt`` and ``data/val.txt`` with lines ``images/0000.jpg labels/0000.png``;
2. **stage 1**: ``crfrnn train --solver solver_fcn.prototxt`` (the FCN alone);
3. **stage 2**: ``crfrnn train --solver solver_crf.prototxt --weights snapshots/fcn_iter_N.caffemodel``
   (FCN + CRF-RNN; the CRF layer is not in the stage-1 file, and the log says it keeps its initialisation);
4. **score**: the mean IU over the validation list of (a) the stage-1 FCN, (b) the stage-1 FCN followed by the
   CRF with its hand-set initial parameters, (c) the stage-2 net (T = 10 at test), from one confusion matrix
   over the set, computed here (no ``crfrnn evaluate`` verb exists yet on this branch); and
   ``panel.png``: image | ground truth | (a) | (c) for the first validation image.

All files go to ``--work`` (default ``own_data_run``); the prototxts are copied there from this folder
(``--quick`` shrinks sizes and iteration counts for a test that runs in seconds).

Usage: ``python examples/own_data/run.py [--work DIR] [--quick] [--seed S]``
"""
import argparse
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

import crfrnn_np as cn
from crfrnn_np.image import preprocess, write_label_png, write_panel

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = ("background", "disc", "square", "triangle")
TINTS = np.array([[120, 150, 110], [210, 80, 60], [60, 90, 210], [220, 200, 60]], np.float64)  # RGB


# -- 1. data --------------------------------------------------------------------------------------------------
def make_scene(rng, size):
    """One synthetic scene: ``(rgb (size, size, 3) uint8, label (size, size) uint8)``, classes 0..3."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    freq, phase = rng.uniform(0.2, 0.6), rng.uniform(0, 2 * np.pi, 2)
    texture = 20 * np.sin(freq * xx + phase[0]) * np.sin(freq * yy + phase[1])
    rgb = TINTS[0] + rng.normal(0, 25, 3) + texture[..., None]
    label = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(1, 4)):
        cls = int(rng.integers(1, 4))
        cy, cx = rng.uniform(0.2 * size, 0.8 * size, 2)
        r = rng.uniform(0.1, 0.22) * size
        if cls == 1:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        elif cls == 2:
            mask = (np.abs(yy - cy) <= r * 0.8) & (np.abs(xx - cx) <= r * 0.8)
        else:                                    # apex up: below the apex and inside both slanted sides
            mask = (yy >= cy - r) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - (cy - r)) * 0.6)
        rgb[mask] = TINTS[cls] + rng.normal(0, 20, 3) + 0.5 * texture[mask][:, None]
        label[mask] = cls
    rgb += rng.normal(0, 10, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8), label


def make_data(folder, n_train, n_val, size, seed):
    """Write the images, label PNGs and the two lists under ``folder``; returns the two list paths."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "labels"), exist_ok=True)
    lists = {"train": [], "val": []}
    for i in range(n_train + n_val):
        rgb, label = make_scene(rng, size)
        Image.fromarray(rgb, "RGB").save(os.path.join(folder, "images", "%04d.jpg" % i), quality=95)
        write_label_png(label, os.path.join(folder, "labels", "%04d.png" % i))
        lists["train" if i < n_train else "val"].append("images/%04d.jpg labels/%04d.png" % (i, i))
    paths = []
    for name, lines in lists.items():
        path = os.path.join(folder, name + ".txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        paths.append(path)
    return paths


# -- the prototxts, copied (and with --quick shrunk) --------------------------------------------------------
QUICK = {"size": 32, "crop": 24, "batch": 2, "n_train": 6, "n_val": 3, "iters_fcn": 6, "iters_crf": 4}


def install_prototxts(work, quick):
    """Copy the solver and net files into ``work``; with ``quick``, rewrite sizes and iteration counts."""
    names = ["fcn_train.prototxt", "crf_train.prototxt", "deploy.prototxt", "solver_fcn.prototxt",
             "solver_crf.prototxt"]
    for name in names:
        dst = os.path.join(work, name)
        if not quick:
            shutil.copyfile(os.path.join(HERE, name), dst)
            continue
        kind = "SolverParameter" if name.startswith("solver") else "NetParameter"
        msg = cn.proto.read_prototxt(os.path.join(HERE, name), kind)
        if kind == "SolverParameter":
            msg.max_iter = QUICK["iters_fcn"] if "fcn" in name else QUICK["iters_crf"]
            msg.test_iter = [QUICK["n_val"]]
            msg.test_interval = msg.max_iter
            msg.display = 2
        for layer in msg.layer if kind == "NetParameter" else ():
            if layer.type == "ImageSegData":
                train = any(rule.phase == "TRAIN" for rule in layer.include)
                layer.transform_param.crop_size = QUICK["crop"] if train else QUICK["size"]
                layer.image_data_param.batch_size = QUICK["batch"] if train else 1
            elif layer.type == "Input":
                layer.input_param.shape[0].dim = [1, 3, QUICK["size"], QUICK["size"]]
        with open(dst, "w") as f:
            f.write(cn.proto.to_text(msg))


def crfrnn(*argv):
    """Run a ``crfrnn`` command in this process (printed first, as you would type it)."""
    from crfrnn_np.tools.main import main
    print("\n$ crfrnn " + " ".join(argv), flush=True)
    status = main(list(argv))
    if status:
        raise SystemExit("crfrnn %s failed (exit status %d)" % (argv[0], status))


# -- 4. scoring ---------------------------------------------------------------------------------------------
def confusion(pred, truth, num_classes, ignore_label=255):
    """(C, C) counts: rows = ground truth, columns = prediction; ``ignore_label`` pixels are left out."""
    keep = truth != ignore_label
    idx = truth[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def mean_iu(conf):
    """``(mean IU, per-class IU)`` of a confusion matrix: diag / (row + column - diag) over the classes whose
    union is not empty (the PASCAL VOC measure)."""
    conf = np.asarray(conf, np.float64)
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    ius = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return float(np.nanmean(ius)), ius


def read_list(path):
    folder = os.path.dirname(os.path.abspath(path))
    with open(path) as f:
        return [[os.path.join(folder, p) for p in line.split()] for line in f if line.strip()]


def score(deploy, weights, val_list, blob):
    """Mean IU and confusion of ``blob`` (``unary``: the FCN; ``pred``: after the CRF) over the list."""
    net = cn.Net(deploy, weights=weights, phase="TEST")
    conf = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    first = None
    for image_path, label_path in read_list(val_list):
        with Image.open(image_path) as im:
            rgb = np.asarray(im.convert("RGB"))
        with Image.open(label_path) as im:
            truth = np.asarray(im)
        net.forward(data=preprocess(rgb))
        pred = net.blobs[blob].data[0].argmax(0)
        conf += confusion(pred, truth, len(CLASSES))
        if first is None:
            first = (rgb, truth, pred)
    return mean_iu(conf) + (first,)


def run(args):
    t0 = time.perf_counter()
    q = QUICK if args.quick else {"size": 64, "n_train": 200, "n_val": 20}
    work = os.path.abspath(args.work)
    os.makedirs(os.path.join(work, "snapshots"), exist_ok=True)
    print("1. data: %d training and %d validation images of %d x %d, %d classes in %s"
          % (q["n_train"], q["n_val"], q["size"], q["size"], len(CLASSES), os.path.join(work, "data")))
    _, val_list = make_data(os.path.join(work, "data"), q["n_train"], q["n_val"], q["size"], args.seed)
    install_prototxts(work, args.quick)
    iters_fcn = cn.proto.read_prototxt(os.path.join(work, "solver_fcn.prototxt"), "SolverParameter").max_iter
    fcn_weights = os.path.join(work, "snapshots", "fcn_iter_%d.caffemodel" % iters_fcn)
    iters_crf = cn.proto.read_prototxt(os.path.join(work, "solver_crf.prototxt"), "SolverParameter").max_iter
    crf_weights = os.path.join(work, "snapshots", "crf_iter_%d.caffemodel" % iters_crf)

    print("\n2. stage 1: the FCN alone")
    crfrnn("train", "--solver", os.path.join(work, "solver_fcn.prototxt"), "--quiet-progress")
    print("\n3. stage 2: FCN + CRF-RNN end to end, from the stage-1 weights")
    crfrnn("train", "--solver", os.path.join(work, "solver_crf.prototxt"), "--weights", fcn_weights,
           "--quiet-progress")

    print("\n4. mean IU over %s (one confusion matrix over the set)" % val_list)
    deploy = os.path.join(work, "deploy.prototxt")
    a, ius_a, (rgb, truth, pred_a) = score(deploy, fcn_weights, val_list, "unary")
    b, ius_b, _ = score(deploy, fcn_weights, val_list, "pred")
    c, ius_c, (_, _, pred_c) = score(deploy, crf_weights, val_list, "pred")
    for tag, miu, ius in (("(a) FCN (stage 1)", a, ius_a), ("(b) FCN + hand-set CRF, T = 10", b, ius_b),
                          ("(c) FCN + CRF-RNN end to end, T = 10", c, ius_c)):
        print("  %-38s %.4f   per class [%s]" % (tag, miu, ", ".join("%.3f" % v for v in ius)))
    panel = os.path.join(work, "panel.png")
    write_panel(panel, rgb, truth, pred_a, pred_c)
    print("panel (image | ground truth | (a) | (c)): %s; %.1f s in all" % (panel, time.perf_counter() - t0))
    return {"a": a, "b": b, "c": c, "fcn_weights": fcn_weights, "crf_weights": crf_weights, "panel": panel}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python examples/own_data/run.py", description=__doc__.split("\n")[0])
    p.add_argument("--work", default="own_data_run", help="folder for the data, nets and snapshots")
    p.add_argument("--quick", action="store_true", help="tiny sizes and a few iterations (seconds)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    run(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
