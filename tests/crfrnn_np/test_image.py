"""Pre/post-processing of crfrnn_np.image: BGR mean subtraction, padding, resizing, palette, PNG, IoU."""
import os

import numpy as np
import pytest
from PIL import Image

from crfrnn_np import image
from crfrnn_np.errors import ShapeError


def test_voc_palette_known_colours():
    pal = image.voc_palette(256)
    # spec crfasrnn.md §4.3 and the PASCAL VOC devkit colours (15 = person, 20 = tv/monitor)
    expected = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
                8: (64, 0, 0), 15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}
    for k, rgb in expected.items():
        assert tuple(pal[k]) == rgb, k


def test_preprocess_bgr_mean_and_padding():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50          # R, G, B
    blob = image.preprocess(rgb, pad_to=(4, 5))
    assert blob.shape == (1, 3, 4, 5) and blob.dtype == np.float32
    np.testing.assert_allclose(blob[0, :, :2, :3].reshape(3, -1),
                               np.array([[50 - 104.00698793], [100 - 116.66876762], [200 - 122.67891434]])
                               .repeat(6, axis=1), rtol=1e-6)
    assert not blob[0, :, 2:, :].any() and not blob[0, :, :, 3:].any()
    assert image.preprocess(rgb).shape == (1, 3, 2, 3)
    with pytest.raises(ShapeError):
        image.preprocess(rgb, pad_to=(1, 5))


def test_resize_longer_side():
    rgb = np.zeros((300, 701, 3), dtype=np.uint8)
    assert image.resize_longer_side(rgb, 500).shape == (int(300 * 500 / 701), 500, 3)
    small = np.zeros((40, 30, 3), dtype=np.uint8)
    assert image.resize_longer_side(small, 500) is small


def test_labels_crop_back():
    scores = np.zeros((1, 3, 4, 6))
    scores[0, 2, :2, :3] = 1.0
    labels = image.labels_from_scores(scores, 2, 3)
    np.testing.assert_array_equal(labels, np.full((2, 3), 2))


def test_write_label_png_atomic(tmp_path):
    labels = np.array([[0, 1, 2], [15, 20, 255]], dtype=np.uint8)
    path = tmp_path / "deep" / "x.png"
    image.write_label_png(labels, path)
    assert os.listdir(path.parent) == ["x.png"]                  # no temporary file left behind
    with Image.open(path) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), labels)
    np.testing.assert_array_equal(image.read_label_png(path), labels)


def test_write_panel(tmp_path):
    rgb = np.full((5, 7, 3), 9, dtype=np.uint8)
    a = np.ones((5, 7), dtype=np.uint8)
    path = tmp_path / "p.png"
    image.write_panel(path, rgb, a, 2 * a, gap=2)
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape == (5, 3 * 7 + 2 * 2, 3)
    assert tuple(arr[0, 0]) == (9, 9, 9) and tuple(arr[0, 9]) == (128, 0, 0) and tuple(arr[0, 18]) == (0, 128, 0)
    assert tuple(arr[0, 7]) == (255, 255, 255)


def test_mean_iou_by_hand():
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 2, 0]])
    # class 0: inter 3, union 4; class 1: inter 2, union 4; class 2: inter 0, union 1 (255 ignored)
    assert image.mean_iou(pred, truth, 21) == pytest.approx((3 / 4 + 2 / 4 + 0) / 3)
    assert image.mean_iou(truth, truth, 21) == 1.0
