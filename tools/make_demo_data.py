"""Write the demo's shipped data: a synthetic photo-like image, its label mask and a coarse FCN-like unary.

Run once (``python -m crfrnn_np.tools.make_demo_data``); the outputs are committed under ``models/demo/``:

``image.png``
    200 x 160 RGB: a textured, shaded background (sky over grass) with three objects of VOC classes —
    a red car-like box (class 7, car), a brown ellipse (class 12, dog) and a blue-grey triangle (class 4,
    boat) — each with its own colour, shading and pixel noise, so colour edges carry the boundaries.
``mask.png``
    160 x 200 VOC-palette label map (0 = background).
``coarse_unary.npy``
    (21, 20, 25) float32 logits at 1/8 resolution, what an FCN's score layer looks like: the one-hot mask
    average-pooled 8 x 8, blurred with a Gaussian (σ = 1.5 coarse pixels), mixed with noise, and turned into
    log-probabilities. ``models/demo.prototxt`` upsamples it with a bilinear Deconvolution (k16, s8) and
    crops with offset 4, as FCN-8s' last stage does.

Everything is drawn from a fixed seed, so re-running reproduces the files.
"""
import os

import numpy as np

HEIGHT, WIDTH, STRIDE, NUM_CLASSES = 160, 200, 8, 21
CAR, DOG, BOAT = 7, 12, 4


def _shapes():
    """Boolean masks (H, W) of the three objects, later ones drawn over earlier ones."""
    y, x = np.mgrid[:HEIGHT, :WIDTH].astype(np.float64)
    car = (x >= 18) & (x < 92) & (y >= 88) & (y < 132)
    car |= (x >= 34) & (x < 76) & (y >= 66) & (y < 90)
    dog = ((x - 140.0) / 38.0) ** 2 + ((y - 108.0) / 27.0) ** 2 <= 1.0
    # triangle with apex (105, 14) and base from (70, 62) to (150, 62)
    boat = (y <= 62) & (y >= 14) & (np.abs(x - 108.0) <= (y - 14.0) * (40.0 / 48.0))
    return [(CAR, car), (DOG, dog), (BOAT, boat)]


def make_image_and_mask(rng):
    """RGB uint8 (H, W, 3) and labels uint8 (H, W)."""
    y, x = np.mgrid[:HEIGHT, :WIDTH].astype(np.float64)
    horizon = 70 + 6 * np.sin(x / 23.0)
    sky = np.stack([120 + 0.4 * y, 160 + 0.3 * y, 215 - 0.1 * y], axis=-1)
    grass = np.stack([70 + 20 * np.sin(x / 5.0) * np.cos(y / 7.0), 120 + 0.3 * (y - 70), 50 + 0 * y], axis=-1)
    image = np.where((y < horizon)[..., None], sky, grass)
    labels = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    colours = {CAR: (200, 40, 35), DOG: (140, 95, 55), BOAT: (90, 105, 150)}
    for label, mask in _shapes():
        shade = 0.8 + 0.2 * np.cos((x - x[mask].mean()) / 25.0)[..., None]
        image = np.where(mask[..., None], np.asarray(colours[label]) * shade, image)
        labels[mask] = label
    image += rng.normal(0.0, 9.0, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), labels


def make_coarse_unary(labels, rng):
    """(C, H/8, W/8) float32 logits of a blurred, noisy, 8x-downsampled one-hot map."""
    from scipy.ndimage import gaussian_filter
    onehot = np.zeros((NUM_CLASSES, HEIGHT, WIDTH))
    onehot[labels, np.arange(HEIGHT)[:, None], np.arange(WIDTH)[None, :]] = 1.0
    coarse = onehot.reshape(NUM_CLASSES, HEIGHT // STRIDE, STRIDE, WIDTH // STRIDE, STRIDE).mean(axis=(2, 4))
    coarse = np.stack([gaussian_filter(c, sigma=1.5, mode="nearest") for c in coarse])
    coarse = 0.6 * coarse + 0.4 * rng.dirichlet(np.ones(NUM_CLASSES) * 0.3, coarse.shape[1:]).transpose(2, 0, 1)
    return (2.0 * np.log(coarse + 1e-3)).astype(np.float32)


def main(folder=None):
    """Write the three files into ``folder`` (default: the shipped ``models/demo``), each atomically."""
    from PIL import Image
    from crfrnn_np import models
    from crfrnn_np.atomic import atomic_path
    from crfrnn_np.image import write_label_png
    folder = folder or models.path("demo")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(2015)
    image, labels = make_image_and_mask(rng)
    with atomic_path(os.path.join(folder, "image.png")) as tmp:
        Image.fromarray(image, "RGB").save(tmp, format="PNG", optimize=True)
    write_label_png(labels, os.path.join(folder, "mask.png"))
    with atomic_path(os.path.join(folder, "coarse_unary.npy")) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, make_coarse_unary(labels, rng))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
