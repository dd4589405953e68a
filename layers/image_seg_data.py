"""ImageSegData: images and label maps listed in a text file (DeepLab's ``ImageSegDataLayer``).

The layer DeepLab's and PSPNet's Caffe training nets use, with DeepLab's semantics:

``image_data_param { source root_folder batch_size shuffle rand_skip is_color label_type ignore_label }``
    Each non-blank line of ``source`` is ``image_path label_path`` (``label_type: PIXEL``), ``image_path
    class`` (``IMAGE``: one class for every pixel) or ``image_path`` (``NONE``: every pixel ``ignore_label``).
    DeepLab's ``caffe.proto`` defaults ``label_type`` to IMAGE and every DeepLab prototxt sets PIXEL; here a
    prototxt that leaves it unset gets PIXEL, the only mode that makes sense for segmentation.
    A path is ``root_folder + path`` (string concatenation, as DeepLab, whose lists start paths with
    ``/``; a ``/`` is put between the two when neither has one). Without ``root_folder``, relative paths are
    resolved against the folder of the list file. ``source`` and a relative ``root_folder`` are tried as
    given, then relative to the prototxt.
``transform_param { mean_value crop_size mirror scale }``
    ``mean_value``: one value, or one per channel in **BGR** order. ``mean_file``, ``new_height`` and
    ``new_width`` are not supported (DeepLab rejects ``mean_file`` too).

Tops (N = ``batch_size``, S = ``crop_size``; without a crop, H x W of the first image, and then every image
must have that size)

``data``     (N, 3, S, S): ``(pixel_BGR - mean) * scale`` (grey with ``is_color: false``: 1 channel).
``label``    (N, 1, S, S): class indices as floats; ``ignore_label`` where the image was padded.
``data_dim`` (N, 1, 1, 2), optional: ``(min(S, H), min(S, W))`` of each original image (DeepLab's third top:
             the valid part of the crop).

Transformation of one image, as DeepLab's ``DataTransformer::TransformImgAndSeg``:

1. when H or W is smaller than S, pad at the **bottom and right** to S: the image with the mean colour (so it
   is 0 after the subtraction), the label with ``ignore_label``;
2. crop S x S at ``(h_off, w_off)``: uniform in ``[0, H_pad - S]`` x ``[0, W_pad - S]`` in TRAIN, the centre
   ``((H_pad - S) // 2, (W_pad - S) // 2)`` in TEST;
3. with ``mirror: true``, flip left-right with probability 1/2 (in either phase, as Caffe's transformer;
   DeepLab's test nets do not set it);
4. subtract the mean, multiply by ``scale``.

Random numbers come from the layer's own generator, seeded once at set-up from the engine's
(:func:`crfrnn_np.random.rng`, which a solver's ``random_seed`` seeds): per image, the mirror coin first, then
``h_off``, ``w_off`` (Caffe's order); the list is shuffled (``shuffle: true``) at set-up and after each pass.
Images are decoded by Pillow (PNG, JPEG, ...); a label image must be palette ("P": its indices), grey ("L",
"I", "I;16": its values) or bilevel.

The next batch is read on a background thread while the net computes the current one. ``get_state`` /
``set_state`` expose the cursor of the next batch (list order, position, generator state), which a solver
snapshot stores in its ``.resume`` sidecar, so a resumed run reads exactly the batches an uninterrupted run
would. Problems with the list (bad lines, missing files) are found at set-up, problems with a file's
content (undecodable, label size differs from the image's) when it is read; each is one line naming the list
file and line. No backward (data has no gradient).
"""
import os
import threading

import numpy as np
from PIL import Image

from crfrnn_np.errors import NetError
from crfrnn_np.layer import Layer, register_layer
from crfrnn_np.random import rng


def _resolve(layer, path, field):
    """``path`` as given when it exists, else relative to the prototxt that defines ``field``."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    loc = layer.layer_param.where(field) or layer.layer_param.where()
    if loc:
        alt = os.path.join(os.path.dirname(os.path.abspath(loc.rsplit(":", 2)[0])), path)
        if os.path.exists(alt):
            return alt
    return path


def _join(root, path):
    """DeepLab's ``root_folder + path``, with a ``/`` between them when neither side has one."""
    if root and not root.endswith(("/", os.sep)) and not path.startswith(("/", os.sep)):
        return root + "/" + path
    return root + path


def read_image(path, color=True):
    """Decode an image file into an (H, W, C) float64 array in BGR order (C = 3), or grey (C = 1)."""
    with Image.open(path) as im:
        if color:
            return np.asarray(im.convert("RGB"), dtype=np.float64)[:, :, ::-1]
        return np.asarray(im.convert("L"), dtype=np.float64)[:, :, None]


def read_label(path):
    """Decode a label image into (H, W) class indices: a palette image's indices, a grey image's values."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L", "I", "I;16", "1"):
            raise ValueError("a label image must be palette or grey (class indices), this one is %s" % im.mode)
        return np.asarray(im, dtype=np.int64)


def transform(image, label, mean, scale, crop_size, offsets, mirror, ignore_label):
    """Pad, crop, mirror and normalise one image and its label map (steps 1-4 of the module docstring).

    Parameters
    ----------
    image : ndarray, shape (H, W, C), BGR values 0..255
    label : ndarray, shape (H, W)
    mean : ndarray, shape (C,)
    scale : float
    crop_size : int
        0 for no crop (and no padding).
    offsets : callable
        ``offsets(H_pad, W_pad) -> (h_off, w_off)``: where the crop starts in the padded image.
    mirror : bool
        Flip left-right.
    ignore_label : int
        Label of padded pixels.

    Returns
    -------
    data : ndarray, shape (C, S, S) (or (C, H, W) without a crop), float64
    label : ndarray, shape (S, S) (or (H, W)), float64
    """
    h, w, c = image.shape
    if crop_size:
        # 1. pad bottom/right with the mean colour (0 after subtraction) and the ignore label
        hp, wp = max(h, crop_size), max(w, crop_size)
        padded = np.empty((hp, wp, c))
        padded[...] = mean
        padded[:h, :w] = image
        padded_label = np.full((hp, wp), ignore_label, dtype=np.float64)
        padded_label[:h, :w] = label
        # 2. crop
        h_off, w_off = offsets(hp, wp)
        image = padded[h_off:h_off + crop_size, w_off:w_off + crop_size]
        label = padded_label[h_off:h_off + crop_size, w_off:w_off + crop_size]
    # 3. mirror (axis 1 of H x W x C is the width)
    if mirror:
        image, label = image[:, ::-1], label[:, ::-1]
    # 4. normalise, channels first
    data = ((image - mean) * scale).transpose(2, 0, 1)
    return data, np.asarray(label, dtype=np.float64)


class _Prefetch:
    """``fn(*args)`` run on a thread; :meth:`get` waits and returns its result (or raises its error)."""

    def __init__(self, fn, *args):
        self._result = None
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(fn,) + args, name="crfrnn-prefetch", daemon=True)
        self._thread.start()

    def _run(self, fn, *args):
        try:
            self._result = fn(*args)
        except BaseException as e:       # handed to the main thread by get()
            self._error = e

    def get(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


@register_layer("ImageSegData")
class ImageSegDataLayer(Layer):
    """Images and label maps from a list file, cropped, mirrored and normalised (see the module docstring)."""

    exact_num_bottom = 0
    min_num_top = 1
    max_num_top = 3

    # -- set-up ------------------------------------------------------------------------------------------
    def layer_setup(self, bottom, top):
        p = self.layer_param.image_data_param
        t = self.layer_param.transform_param
        if p.batch_size <= 0:
            raise self.error("image_data_param.batch_size must be > 0 (got %d)" % p.batch_size,
                             field="image_data_param")
        if not p.source:
            raise self.error("image_data_param.source is not set", field="image_data_param")
        for msg, name in ((t, "mean_file"), (p, "new_height"), (p, "new_width"), (p, "mean_file")):
            if msg.has(name) and getattr(msg, name):
                raise self.error("%s is not supported by ImageSegData" % name)
        self.batch_size = int(p.batch_size)
        self.shuffle = bool(p.shuffle)
        self.color = bool(p.is_color)
        self.channels = 3 if self.color else 1
        self.ignore_label = int(p.ignore_label)
        self.label_type = p.label_type if p.has("label_type") else "PIXEL"
        self.crop_size = int(t.crop_size)
        self.scale = float(t.scale)
        self.do_mirror = bool(t.mirror)
        means = [float(v) for v in t.mean_value]
        if len(means) not in (0, 1, self.channels):
            raise self.error("transform_param: give 1 mean_value or %d (one per channel), got %d"
                             % (self.channels, len(means)), field="transform_param")
        self.mean = np.array(means * self.channels if len(means) == 1 else means or [0.0] * self.channels)
        self.source = _resolve(self, str(p.source), "image_data_param")
        root = str(p.root_folder)
        self.root = _resolve(self, root, "image_data_param") if root else ""
        self.lines = self._read_list()

        # the layer's own generator, seeded from the engine's (the solver's random_seed)
        generator = np.random.Generator(np.random.PCG64(int(rng().integers(2**63))))
        order = np.arange(len(self.lines))
        if self.shuffle:
            generator.shuffle(order)
        pos = int(generator.integers(p.rand_skip)) if p.rand_skip else 0
        if pos >= len(self.lines):
            raise self.error("rand_skip %d: the list has only %d lines" % (p.rand_skip, len(self.lines)))
        self._cursor = {"order": order, "pos": pos, "rng": generator.bit_generator.state}

        if self.crop_size:
            self.height = self.width = self.crop_size
        else:
            lineno, image_path, _ = self.lines[order[pos]]
            try:
                with Image.open(image_path) as im:
                    self.width, self.height = im.size
            except (OSError, ValueError) as e:
                raise self._line_error(lineno, "cannot read image '%s' (%s)" % (image_path, e)) from None
        self._pending = _Prefetch(self._load_batch, self._cursor)

    def _line_error(self, lineno, message):
        return self.error("%s:%d: %s" % (self.source, lineno, message), field="image_data_param")

    def _read_list(self):
        """``[(line number, image path, label path | class | None)]`` from the list file; files must exist."""
        try:
            with open(self.source) as f:
                text = f.read().splitlines()
        except OSError as e:
            raise self.error("cannot read the image list '%s' (%s)" % (self.source, e.strerror or e),
                             field="image_data_param") from None
        folder = os.path.dirname(os.path.abspath(self.source))
        need = {"PIXEL": 2, "IMAGE": 2, "NONE": 1}[self.label_type]
        lines = []
        for lineno, line in enumerate(text, 1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) < need or (need == 2 and len(tokens) > 2):
                raise self._line_error(lineno, "expected '%s' (label_type %s), got %r"
                                       % ("image_path label_path" if self.label_type == "PIXEL" else
                                          "image_path class" if need == 2 else "image_path",
                                          self.label_type, line.strip()))
            paths = [self._path(tokens[0], folder)]
            if self.label_type == "PIXEL":
                paths.append(self._path(tokens[1], folder))
                label = paths[1]
            elif self.label_type == "IMAGE":
                try:
                    label = int(tokens[1])
                except ValueError:
                    raise self._line_error(lineno, "label_type IMAGE needs an integer class, got '%s'"
                                           % tokens[1]) from None
            else:
                label = None
            for kind, path in zip(("image", "label"), paths):
                if not os.path.isfile(path):
                    raise self._line_error(lineno, "%s file '%s' not found" % (kind, path))
            lines.append((lineno, paths[0], label))
        if not lines:
            raise self.error("the image list '%s' names no image" % self.source, field="image_data_param")
        return lines

    def _path(self, name, folder):
        if self.root:
            return _join(self.root, name)
        return name if os.path.isabs(name) else os.path.join(folder, name)

    def reshape(self, bottom, top):
        n, s = self.batch_size, (self.height, self.width)
        shapes = [(n, self.channels) + s, (n, 1) + s, (n, 1, 1, 2)]
        for blob, shape in zip(top, shapes):
            blob.reshape(shape)

    # -- reading a batch (on the prefetch thread) -----------------------------------------------------------
    def _load_batch(self, cursor):
        """The batch at ``cursor`` and the cursor after it; touches no state of the layer."""
        order, pos = cursor["order"].copy(), cursor["pos"]
        generator = np.random.Generator(np.random.PCG64())
        generator.bit_generator.state = cursor["rng"]
        n, h, w = self.batch_size, self.height, self.width
        data = np.empty((n, self.channels, h, w), dtype=self.dtype)
        label = np.empty((n, 1, h, w), dtype=self.dtype)
        dims = np.empty((n, 1, 1, 2), dtype=self.dtype)
        for i in range(n):
            lineno, image_path, label_source = self.lines[order[pos]]
            image, labels = self._read_pair(lineno, image_path, label_source)
            ih, iw = image.shape[:2]
            if not self.crop_size and (ih, iw) != (h, w):
                raise self._line_error(lineno, "image '%s' is %dx%d, but the batch is %dx%d (the first image's "
                                       "size): set transform_param.crop_size" % (image_path, ih, iw, h, w))
            mirror = self.do_mirror and bool(generator.integers(2))
            data[i], label[i, 0] = transform(image, labels, self.mean, self.scale, self.crop_size,
                                             lambda hp, wp: self._offsets(generator, hp, wp), mirror,
                                             self.ignore_label)
            dims[i, 0, 0] = (min(h, ih), min(w, iw))
            pos += 1
            if pos == len(order):
                pos = 0
                if self.shuffle:
                    generator.shuffle(order)
        return (data, label, dims), {"order": order, "pos": pos, "rng": generator.bit_generator.state}

    def _offsets(self, generator, hp, wp):
        """Where the crop starts in an ``hp x wp`` padded image: at random in TRAIN, the centre in TEST."""
        s = self.crop_size
        if self.phase == "TRAIN":
            return int(generator.integers(hp - s + 1)), int(generator.integers(wp - s + 1))
        return (hp - s) // 2, (wp - s) // 2

    def _read_pair(self, lineno, image_path, label_source):
        try:
            image = read_image(image_path, self.color)
        except (OSError, ValueError) as e:
            raise self._line_error(lineno, "cannot read image '%s' (%s)" % (image_path, e)) from None
        if self.label_type == "PIXEL":
            try:
                labels = read_label(label_source)
            except (OSError, ValueError) as e:
                raise self._line_error(lineno, "cannot read label '%s' (%s)" % (label_source, e)) from None
            if labels.shape != image.shape[:2]:
                raise self._line_error(lineno, "label '%s' is %dx%d but image '%s' is %dx%d"
                                       % (label_source, labels.shape[0], labels.shape[1], image_path,
                                          image.shape[0], image.shape[1]))
        else:
            value = label_source if self.label_type == "IMAGE" else self.ignore_label
            labels = np.full(image.shape[:2], value, dtype=np.int64)
        return image, labels

    # -- forward ---------------------------------------------------------------------------------------------
    def forward_cpu(self, bottom, top):
        batch, cursor = self._pending.get()
        for blob, values in zip(top, batch):
            blob.data[...] = values
        self._cursor = cursor
        self._pending = _Prefetch(self._load_batch, cursor)

    def backward_cpu(self, top, propagate_down, bottom):
        """Nothing to do: there are no bottoms."""

    # -- cursor, for exact resume -------------------------------------------------------------------------
    def get_state(self):
        """The cursor of the next batch: ``{"order", "pos", "rng"}`` (list order, position, generator state)."""
        c = self._cursor
        return {"order": [int(i) for i in c["order"]], "pos": int(c["pos"]), "rng": c["rng"]}

    def set_state(self, state):
        """Continue from a cursor :meth:`get_state` returned (same list); the prefetched batch is dropped."""
        try:
            order = np.asarray(state["order"], dtype=np.int64)
            pos = int(state["pos"])
            generator = np.random.Generator(np.random.PCG64())
            generator.bit_generator.state = state["rng"]
        except (KeyError, TypeError, ValueError) as e:
            raise NetError("%sinvalid data cursor in the resume state (%s)" % (self.where(), e)) from None
        if sorted(order.tolist()) != list(range(len(self.lines))) or not 0 <= pos < len(order):
            raise NetError("%sthe resume state's list order does not match the %d lines of '%s'"
                           % (self.where(), len(self.lines), self.source))
        try:
            self._pending.get()
        except Exception:        # the dropped batch's error (a bad file) surfaces when that file is read again
            pass
        self._cursor = {"order": order, "pos": pos, "rng": generator.bit_generator.state}
        self._pending = _Prefetch(self._load_batch, self._cursor)
