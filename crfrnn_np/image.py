"""Image pre- and post-processing for segmentation nets (the CRF-RNN demo's, done right).

Pre-processing (spec crfasrnn.md §4.3, model card of ``TVG_CRFRNN_COCO_VOC``)
---------------------------------------------------------------------------
1. load with PIL as RGB (grey and palette images become three channels), uint8;
2. if a size limit is given and ``max(H, W)`` exceeds it, resize bilinearly so the longer side equals the
   limit, keeping the aspect ratio (sizes truncated with ``int()``); smaller images are not upscaled;
3. flip RGB -> **BGR** and subtract the mean **B 104.00698793, G 116.66876762, R 122.67891434** (the original
   demo's regression, which subtracted the RGB mean after flipping, is not reproduced);
4. zero-pad at the bottom and right to the net's input size (0 is the mean colour after subtraction), or
   keep the image's own size;
5. return a 1 x 3 x H x W float32 blob.

Post-processing: argmax over the class axis, crop back to the un-padded size, save as a palette PNG with
the PASCAL VOC colour map (:func:`voc_palette`); :func:`resize_labels` scales a label map back to the size of
an image that was shrunk (nearest neighbour). :func:`write_panel` puts image | unary argmax | CRF result side
by side; :func:`mean_iou` scores one label map against ground truth (:mod:`crfrnn_np.metrics` scores a set).
"""
import io
import os

import numpy as np
from PIL import Image

from .atomic import atomic_path
from .errors import Error, ShapeError

#: Per-channel mean in **BGR** order (the model card's values).
MEAN_BGR = np.array([104.00698793, 116.66876762, 122.67891434], dtype=np.float64)


def load_image(path):
    """Read an image file as an RGB uint8 array.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError) as exc:
        raise Error("%s: cannot read image: %s" % (path, exc)) from None


def resize_longer_side(rgb, limit):
    """Shrink so that ``max(H, W) <= limit`` (bilinear, aspect kept); smaller images are returned as is.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    limit : int or None

    Returns
    -------
    ndarray, shape (H', W', 3), uint8, with ``H' = int(H * s)``, ``W' = int(W * s)``, ``s = limit / max(H, W)``
    """
    h, w = rgb.shape[:2]
    if not limit or max(h, w) <= limit:
        return rgb
    scale = float(limit) / max(h, w)
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR), dtype=np.uint8)


def preprocess(rgb, pad_to=None, mean_bgr=MEAN_BGR):
    """RGB uint8 image -> mean-subtracted BGR NCHW float32 blob, zero-padded bottom/right.

    Parameters
    ----------
    rgb : ndarray, shape (h, w, 3)
    pad_to : (H, W) or None
        The net's input size; ``None`` keeps (h, w). Must be at least (h, w).
    mean_bgr : array-like, shape (3,)

    Returns
    -------
    ndarray, shape (1, 3, H, W), float32
        Channel 0 = B - 104.007, 1 = G - 116.669, 2 = R - 122.679 inside the image, 0 in the padding.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ShapeError("expected an (H, W, 3) RGB image, got shape %s" % (rgb.shape,))
    h, w = rgb.shape[:2]
    H, W = (h, w) if pad_to is None else (int(pad_to[0]), int(pad_to[1]))
    if H < h or W < w:
        raise ShapeError("image of %dx%d does not fit the net's %dx%d input; resize it first (--max-size)"
                         % (h, w, H, W))
    bgr = rgb[:, :, ::-1].astype(np.float64) - np.asarray(mean_bgr, dtype=np.float64)
    blob = np.zeros((1, 3, H, W), dtype=np.float32)
    blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
    return blob


def labels_from_scores(scores, height=None, width=None):
    """Argmax over the class axis, cropped back to the un-padded size.

    Parameters
    ----------
    scores : ndarray, shape (C, H, W) or (1, C, H, W)
    height, width : int, optional
        Size of the image before padding (default: the whole map).

    Returns
    -------
    ndarray, shape (height, width), uint8
    """
    scores = np.asarray(scores)
    if scores.ndim == 4:
        scores = scores[0]
    labels = np.argmax(scores, axis=0)
    h = labels.shape[0] if height is None else height
    w = labels.shape[1] if width is None else width
    return labels[:h, :w].astype(np.uint8)


def voc_palette(num_classes=256):
    """The PASCAL VOC colour map.

    Class index bits 0, 1, 2 set the top bits (value 128) of R, G, B; bits 3, 4, 5 the next bits (64);
    and so on: class 0 is black, 1 = (128, 0, 0), 2 = (0, 128, 0), 3 = (128, 128, 0), 4 = (0, 0, 128).

    Returns
    -------
    ndarray, shape (num_classes, 3), uint8
    """
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for k in range(num_classes):
        label, shift = k, 7
        while label:
            for channel in range(3):
                palette[k, channel] |= ((label >> channel) & 1) << shift
            label >>= 3
            shift -= 1
    return palette


def _atomic_save(image, path):
    """Save a PIL image as PNG to a temporary file in the target folder, then rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(folder, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def label_image(labels):
    """A label map as a palette ("P" mode) PIL image with the VOC colours.

    Parameters
    ----------
    labels : ndarray, shape (H, W), integer values in 0..255

    Returns
    -------
    PIL.Image.Image, mode "P", size (W, H)
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ShapeError("a label map must be 2-D, got shape %s" % (labels.shape,))
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    im.putpalette(voc_palette(256).reshape(-1).tolist())
    return im


def write_label_png(labels, path):
    """Write a label map as a palette ("P" mode) PNG with the VOC colours (atomic replace).

    Parameters
    ----------
    labels : ndarray, shape (H, W), integer values in 0..255
    path : str
    """
    _atomic_save(label_image(labels), path)


def png_bytes(im):
    """The PNG file of a PIL image, as bytes (what :func:`_atomic_save` would write)."""
    buffer = io.BytesIO()
    im.save(buffer, format="PNG")
    return buffer.getvalue()


def resize_labels(labels, height, width):
    """Scale a label map to (height, width) by nearest neighbour (class indices must not be interpolated).

    Output pixel ``(i, j)`` takes the input pixel whose cell contains its centre: row
    ``floor((i + 1/2) * h / height)``, column ``floor((j + 1/2) * w / width)``, in integer arithmetic.

    Parameters
    ----------
    labels : ndarray, shape (h, w)
    height, width : int

    Returns
    -------
    ndarray, shape (height, width), the dtype of ``labels``
    """
    labels = np.asarray(labels)
    h, w = labels.shape
    if (h, w) == (height, width):
        return labels
    rows = ((2 * np.arange(height) + 1) * h) // (2 * height)
    cols = ((2 * np.arange(width) + 1) * w) // (2 * width)
    return labels[rows[:, None], cols[None, :]]


def read_label_png(path):
    """Read a palette PNG's indices (or a grey PNG's values) as an (H, W) uint8 label map."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise Error("%s: expected a palette or grey label PNG, got mode %s" % (path, im.mode))
            return np.asarray(im, dtype=np.uint8).copy()
    except (OSError, ValueError) as exc:           # missing, not an image, or truncated (PIL decodes lazily)
        raise Error("%s: cannot read label map: %s" % (path, exc)) from None


def colorize(labels):
    """(H, W) labels -> (H, W, 3) uint8 RGB with the VOC palette."""
    return voc_palette(256)[np.asarray(labels, dtype=np.uint8)]


def panel_image(rgb, *label_maps, gap=4):
    """image | label map 1 | label map 2 ... side by side, as an RGB PIL image.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    *label_maps : ndarray, shape (H, W) each (e.g. the unary argmax and the CRF-RNN result)
    gap : int
        White pixels between the tiles.

    Returns
    -------
    PIL.Image.Image, mode "RGB", size (n W + (n - 1) gap, H) for n tiles
    """
    rgb = np.asarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    tiles = [rgb] + [colorize(np.asarray(m)[:h, :w]) for m in label_maps]
    panel = np.full((h, len(tiles) * w + (len(tiles) - 1) * gap, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        x0 = i * (w + gap)
        panel[:tile.shape[0], x0:x0 + tile.shape[1]] = tile
    return Image.fromarray(panel, mode="RGB")


def write_panel(path, rgb, *label_maps, gap=4):
    """Write :func:`panel_image` (image | label map 1 | label map 2 ...) as an RGB PNG (atomic replace)."""
    _atomic_save(panel_image(rgb, *label_maps, gap=gap), path)


def mean_iou(pred, truth, num_classes, ignore_label=255):
    """Mean intersection over union of one label map over the classes present in ``pred`` or ``truth``.

    The one-image case of :mod:`crfrnn_np.metrics` (a data set is scored from its summed confusion matrix).

    Parameters
    ----------
    pred, truth : ndarray, shape (H, W), integer labels in 0..num_classes-1
    num_classes : int
    ignore_label : int
        Pixels with this ground-truth label are not counted.

    Returns
    -------
    float
        mean over classes c with a non-empty union of |pred=c and truth=c| / |pred=c or truth=c|; 0 when no
        pixel counts.
    """
    from .metrics import confusion, scores
    value = scores(confusion(pred, truth, num_classes, ignore_label))["mean_iou"]
    return 0.0 if np.isnan(value) else value
