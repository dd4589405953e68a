"""Fixtures of the tools' tests.

``segment_data``: small data sets for the ``crfrnn segment --images`` tests (test_segment_dataset.py,
test_segment_pool.py, test_segment_worker.py): a tiny CRF-RNN net with seeded weights, synthetic images of
several sizes and ground truth with ignore pixels.
"""
import os
import types

import numpy as np
from PIL import Image

import pytest

from crfrnn_np import Net

NET = """
name: "tiny_seg"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: SIZE dim: SIZE } } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "splitting" type: "Split" bottom: "score" top: "unary" top: "Q0" }
layer { name: "inference1" type: "MultiStageMeanfield" bottom: "unary" bottom: "Q0" bottom: "data" top: "pred"
  multi_stage_meanfield_param { num_iterations: ITERATIONS theta_alpha: 8 theta_beta: 10 theta_gamma: 2 } }
"""
NUM_CLASSES = 4


def make_net(folder, size=32, iterations=3):
    """Write ``net.prototxt`` (input size x size, 4 classes) and seeded ``net.caffemodel``; return their paths."""
    model = os.path.join(folder, "net.prototxt")
    with open(model, "w") as f:
        f.write(NET.replace("SIZE", str(size)).replace("ITERATIONS", str(iterations)))
    net = Net(model)
    rng = np.random.default_rng(5)
    weight, bias = net.params["score"]
    weight.data[...] = rng.standard_normal(weight.shape) * 0.02
    bias.data[...] = rng.standard_normal(bias.shape) * 0.1
    weights = os.path.join(folder, "net.caffemodel")
    net.save(weights)
    return model, weights


def make_images(folder, sizes, seed=0):
    """Smooth random RGB images (blobs of colour, so the CRF has edges to follow) of the given (h, w)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k, (h, w) in enumerate(sizes):
        coarse = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
        rgb = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
        path = os.path.join(folder, "img%02d.png" % k)
        rgb.save(path)
        paths.append(path)
    return paths


def make_truth(folder, image_paths, seed=1):
    """Grey label PNGs with the images' stems: labels 0..3, a tenth of the pixels 255 (ignored)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for path in image_paths:
        with Image.open(path) as im:
            w, h = im.size
        labels = rng.integers(0, NUM_CLASSES, (h, w)).astype(np.uint8)
        labels[rng.random((h, w)) < 0.1] = 255
        Image.fromarray(labels, mode="L").save(os.path.join(folder, os.path.basename(path)))


def read_folder(folder):
    """{file name: bytes} of the PNGs directly in ``folder``."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".png"):
            with open(os.path.join(folder, name), "rb") as f:
                out[name] = f.read()
    return out


@pytest.fixture(scope="session")
def segment_data():
    """The helpers above: ``make_net``, ``make_images``, ``make_truth``, ``read_folder``, ``NUM_CLASSES``."""
    return types.SimpleNamespace(make_net=make_net, make_images=make_images, make_truth=make_truth,
                                 read_folder=read_folder, NUM_CLASSES=NUM_CLASSES)


#: A tiny net with a parameter in every kind of layer the verbs report on (gradcheck, time, the main parser).
TINY_NET = """name: "tiny"
input: "data" input_dim: 2 input_dim: 3 input_dim: 6 input_dim: 6
force_backward: true
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool1" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.fixture
def net_file(tmp_path):
    """``tiny.prototxt`` in the test's folder."""
    p = tmp_path / "tiny.prototxt"
    p.write_text(TINY_NET)
    return p
