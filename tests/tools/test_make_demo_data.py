"""make_demo_data: re-running it reproduces the shipped demo files (image, mask and coarse unary)."""
import numpy as np
from PIL import Image

from crfrnn_np import models
from crfrnn_np.tools import make_demo_data


def test_reproduces_the_shipped_files(tmp_path):
    assert make_demo_data.main(str(tmp_path)) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coarse_unary.npy", "image.png", "mask.png"]
    for name in ("image.png", "mask.png"):
        with Image.open(tmp_path / name) as ours, Image.open(models.path("demo", name)) as shipped:
            assert ours.mode == shipped.mode
            np.testing.assert_array_equal(np.asarray(ours), np.asarray(shipped), err_msg=name)
    unary = np.load(tmp_path / "coarse_unary.npy")
    assert unary.shape == (21, 20, 25) and unary.dtype == np.float32
    np.testing.assert_array_equal(unary, np.load(models.path("demo", "coarse_unary.npy")))


def test_objects_and_their_classes():
    image, labels = make_demo_data.make_image_and_mask(np.random.default_rng(0))
    assert image.shape == (160, 200, 3) and image.dtype == np.uint8
    assert set(np.unique(labels)) == {0, make_demo_data.BOAT, make_demo_data.CAR, make_demo_data.DOG}
    car = labels == make_demo_data.CAR
    assert image[car][:, 0].mean() > image[car][:, 2].mean() + 80                    # the car is red
    unary = make_demo_data.make_coarse_unary(labels, np.random.default_rng(0))
    # the coarse argmax agrees with the mask, pooled 8 x 8, on most cells
    pooled = labels.reshape(20, 8, 25, 8).transpose(0, 2, 1, 3).reshape(20, 25, 64)
    majority = np.array([[np.bincount(cell, minlength=21).argmax() for cell in row] for row in pooled])
    assert np.mean(unary.argmax(axis=0) == majority) > 0.8
