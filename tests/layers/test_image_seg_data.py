"""ImageSegData: padding, crops and mirrors against hand-built arrays, label files, determinism under the
seed, exact resume through a solver snapshot, and one-line errors naming the list file and line.

Every image is written by the test itself; pixel values encode their position, so a crop tells where it was
taken and the expected array is an explicit slice of the original.
"""
import numpy as np
import pytest
from PIL import Image

import crfrnn_np as cn
from crfrnn_np import Error
from crfrnn_np.solver import get_solver
from crfrnn_np.testing import LayerTestCase

MEAN = (10.0, 20.0, 30.0)          # B, G, R


def rgb_image(h, w, seed=0):
    """(H, W, 3) uint8 RGB whose pixels differ everywhere (R = 3k, G = 3k + 1, B = 3k + 2 for pixel k),
    shifted by ``seed``."""
    k = (np.arange(h * w).reshape(h, w) + 7 * seed) % 80
    return np.stack([3 * k, 3 * k + 1, 3 * k + 2], axis=-1).astype(np.uint8)


def write_pair(folder, name, h, w, seed=0, label_mode="P"):
    """Write ``name.png`` (RGB) and ``name_label.png`` (class = pixel index mod 4); return both arrays."""
    rgb = rgb_image(h, w, seed)
    Image.fromarray(rgb, mode="RGB").save(folder / (name + ".png"))
    label = ((np.arange(h * w).reshape(h, w) + seed) % 4).astype(np.uint8)
    im = Image.fromarray(label, mode="L")
    if label_mode == "P":
        im = Image.fromarray(label, mode="P")
        im.putpalette([255 - i % 256 for i in range(768)])     # palette colours unrelated to the indices
    im.save(folder / (name + "_label.png"))
    return rgb, label


def net_text(source, batch=1, crop=0, mirror=False, shuffle=False, phase="TRAIN", extra_image="",
             tops=("data", "label", "data_dim")):
    transform = "mean_value: %g mean_value: %g mean_value: %g scale: 0.5" % MEAN
    if crop:
        transform += " crop_size: %d" % crop
    if mirror:
        transform += " mirror: true"
    return ('name: "seg" layer { name: "d" type: "ImageSegData" %s include { phase: %s } '
            'transform_param { %s } image_data_param { source: "%s" batch_size: %d shuffle: %s %s } }'
            % (" ".join('top: "%s"' % t for t in tops), phase, transform, source, batch,
               "true" if shuffle else "false", extra_image))


def make_net(source, phase="TRAIN", **kw):
    return cn.Net(cn.proto.parse(net_text(source, phase=phase, **kw)), phase=phase, dtype="float64")


def expected_data(rgb):
    """(3, H, W): BGR minus the mean, times the scale 0.5."""
    bgr = rgb[:, :, ::-1].astype(np.float64)
    return ((bgr - np.array(MEAN)) * 0.5).transpose(2, 0, 1)


def test_test_phase_pads_bottom_right_and_crops_the_centre(tmp_path):
    rgb, label = write_pair(tmp_path, "a", 3, 6)
    (tmp_path / "list.txt").write_text("a.png a_label.png\n")
    out = make_net(tmp_path / "list.txt", phase="TEST", crop=4).forward()
    # padded to 4 x 6 (one row of mean colour at the bottom), centre crop at (0, 1)
    want = np.zeros((3, 4, 4))
    want[:, :3] = expected_data(rgb)[:, :, 1:5]
    want_label = np.full((4, 4), 255.0)
    want_label[:3] = label[:, 1:5]
    np.testing.assert_array_equal(out["data"][0], want)
    np.testing.assert_array_equal(out["label"][0, 0], want_label)
    np.testing.assert_array_equal(out["data_dim"].reshape(2), [3, 4])   # min(crop, H), min(crop, W)
    # hand-checked corner: pixel (0, 1) has k = 1, B = 3 * 1 + 2 = 5 -> (5 - 10) * 0.5
    assert out["data"][0, 0, 0, 0] == -2.5 and out["data"][0, 2, 0, 0] == (3 - 30) * 0.5


def test_no_crop_gives_the_whole_image_and_grey_labels(tmp_path):
    rgb, label = write_pair(tmp_path, "a", 5, 4, label_mode="L")
    (tmp_path / "list.txt").write_text("a.png a_label.png\n")
    net = make_net(tmp_path / "list.txt", phase="TEST", batch=2)
    out = net.forward()
    assert out["data"].shape == (2, 3, 5, 4) and out["label"].shape == (2, 1, 5, 4)
    for i in range(2):                                       # the one-line list wraps around
        np.testing.assert_array_equal(out["data"][i], expected_data(rgb))
        np.testing.assert_array_equal(out["label"][i, 0], label)
    np.testing.assert_array_equal(out["data_dim"][:, 0, 0], [[5, 4], [5, 4]])


def test_train_crops_are_exact_slices_covering_every_offset_and_both_mirrors(tmp_path):
    rgb, label = write_pair(tmp_path, "a", 4, 5)
    (tmp_path / "list.txt").write_text("a.png a_label.png\n")
    cn.random.set_seed(2)
    net = make_net(tmp_path / "list.txt", batch=4, crop=3, mirror=True)
    full, seen = expected_data(rgb), set()
    for _ in range(25):
        out = net.forward()
        for data, lab in zip(out["data"], out["label"][:, 0]):
            mirrored = False
            # locate the crop by its (unique) top-left pixel, trying the unmirrored and mirrored reading
            for mirrored in (False, True):
                corner = data[0, 0, -1] if mirrored else data[0, 0, 0]
                hits = np.argwhere(full[0] == corner)
                if len(hits) == 1:
                    h, w = hits[0]
                    want = full[:, h:h + 3, w:w + 3]
                    want_label = label[h:h + 3, w:w + 3]
                    if mirrored:
                        want, want_label = want[:, :, ::-1], want_label[:, ::-1]
                    if want.shape == data.shape and np.array_equal(want, data):
                        np.testing.assert_array_equal(lab, want_label)
                        seen.add((int(h), int(w), mirrored))
                        break
            else:
                pytest.fail("batch item is not a crop of the image")
    # offsets h in 0..1, w in 0..2, both mirror states: 12 combinations, all drawn in 100 crops
    assert seen == {(h, w, m) for h in range(2) for w in range(3) for m in (False, True)}


def test_train_pads_small_images_before_the_random_crop(tmp_path):
    rgb, label = write_pair(tmp_path, "a", 2, 3)
    (tmp_path / "list.txt").write_text("a.png a_label.png\n")
    cn.random.set_seed(4)
    out = make_net(tmp_path / "list.txt", batch=8, crop=3).forward()
    want = np.zeros((3, 3, 3))
    want[:, :2] = expected_data(rgb)          # 2 x 3 padded to 3 x 3: only offset (0, 0) exists
    want_label = np.full((3, 3), 255.0)
    want_label[:2] = label
    for i in range(8):
        np.testing.assert_array_equal(out["data"][i], want)
        np.testing.assert_array_equal(out["label"][i, 0], want_label)


def test_label_type_none_and_image(tmp_path):
    write_pair(tmp_path, "a", 3, 3)
    (tmp_path / "none.txt").write_text("a.png\n")
    (tmp_path / "image.txt").write_text("a.png 2\n")
    out = make_net(tmp_path / "none.txt", phase="TEST", extra_image="label_type: NONE ignore_label: 99").forward()
    np.testing.assert_array_equal(out["label"], np.full((1, 1, 3, 3), 99.0))
    out = make_net(tmp_path / "image.txt", phase="TEST", extra_image="label_type: IMAGE").forward()
    np.testing.assert_array_equal(out["label"], np.full((1, 1, 3, 3), 2.0))


def test_root_folder_is_prefixed_as_deeplab_does(tmp_path, monkeypatch):
    (tmp_path / "img").mkdir()
    rgb, _ = write_pair(tmp_path / "img", "a", 3, 3)
    (tmp_path / "list.txt").write_text("/a.png /a_label.png\n")     # DeepLab lists start with '/'
    monkeypatch.chdir(tmp_path)
    out = make_net("list.txt", phase="TEST", extra_image='root_folder: "img"').forward()
    np.testing.assert_array_equal(out["data"][0], expected_data(rgb))


def write_list(tmp_path, n=5):
    for k in range(n):
        write_pair(tmp_path, "p%d" % k, 4 + k % 2, 5, seed=k)
    (tmp_path / "list.txt").write_text("".join("p%d.png p%d_label.png\n" % (k, k) for k in range(n)))


def batches(net, count):
    return [{k: v.copy() for k, v in net.forward().items()} for _ in range(count)]


def test_shuffle_visits_every_line_once_per_pass(tmp_path):
    for k in range(5):
        write_pair(tmp_path, "p%d" % k, 4, 5, seed=k)
    (tmp_path / "list.txt").write_text("".join("p%d.png p%d_label.png\n" % (k, k) for k in range(5)))
    cn.random.set_seed(1)
    net = make_net(tmp_path / "list.txt", phase="TEST", batch=5, shuffle=True)
    passes = []
    for batch in batches(net, 3):
        # image k's first pixel has index 7k: its B value is 3 * 7k + 2
        b = batch["data"][:, 0, 0, 0] * 2 + MEAN[0]
        passes.append(((b - 2) / 21).astype(int).tolist())
    assert all(sorted(p) == list(range(5)) for p in passes)
    assert any(p != list(range(5)) for p in passes) and len({tuple(p) for p in passes}) > 1


def test_the_seed_decides_the_stream(tmp_path):
    write_list(tmp_path)
    runs = []
    for seed in (5, 5, 6):
        cn.random.set_seed(seed)
        runs.append(batches(make_net(tmp_path / "list.txt", batch=5, crop=3, mirror=True, shuffle=True), 2))
    for a, b in zip(runs[0], runs[1]):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a["data"], b["data"]) for a, b in zip(runs[0], runs[2]))


def test_state_round_trip_replays_the_same_batches(tmp_path):
    write_list(tmp_path)
    cn.random.set_seed(9)
    net = make_net(tmp_path / "list.txt", batch=2, crop=3, mirror=True, shuffle=True)
    layer = net.layer_dict["d"]
    batches(net, 3)
    state = layer.get_state()
    expected = batches(net, 4)
    layer.set_state(state)
    for a, b in zip(expected, batches(net, 4)):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


SEG_NET = """
name: "tiny"
layer { name: "data" type: "ImageSegData" top: "data" top: "label"
        transform_param { mean_value: 100 crop_size: 3 mirror: true scale: 0.01 }
        image_data_param { source: "%s/list.txt" batch_size: 2 shuffle: true label_type: PIXEL } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_param { ignore_label: 255 } }
"""


def test_solver_resume_equals_the_uninterrupted_run(tmp_path):
    write_list(tmp_path)
    (tmp_path / "net.prototxt").write_text(SEG_NET % tmp_path)
    (tmp_path / "snap").mkdir()
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.1\nmomentum: 0.9\nlr_policy: "fixed"\nmax_iter: 6\nsnapshot: 3\n'
        'snapshot_prefix: "%s/snap/tiny"\nrandom_seed: 3\n' % tmp_path)
    quiet = dict(log=lambda s: None, dtype="float64")
    full = get_solver(str(tmp_path / "solver.prototxt"), **quiet)
    full.step(6)
    resumed = get_solver(str(tmp_path / "solver.prototxt"), **quiet)
    resumed.restore(str(tmp_path / "snap" / "tiny_iter_3.solverstate"))
    resumed.step(3)
    for a, b in zip(full.net.learnable_params, resumed.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)
    # and the data stream matters: a restore without the cursor gives different weights
    (tmp_path / "snap" / "tiny_iter_3.solverstate.resume").unlink()
    cold = get_solver(str(tmp_path / "solver.prototxt"), **quiet)
    cold.restore(str(tmp_path / "snap" / "tiny_iter_3.solverstate"))
    cold.step(3)
    assert not all(np.array_equal(a.data, b.data)
                   for a, b in zip(full.net.learnable_params, cold.net.learnable_params))


def one_line_error(source, match, phase="TEST", forward=False, **kw):
    with pytest.raises(Error) as info:
        net = make_net(source, phase=phase, **kw)
        if forward:
            net.forward()
    message = str(info.value)
    assert "\n" not in message
    assert match in message, message
    return message


def test_errors_name_the_list_file_and_line(tmp_path):
    write_pair(tmp_path, "a", 3, 4)
    write_pair(tmp_path, "b", 3, 5)
    lst = tmp_path / "list.txt"
    lst.write_text("a.png a_label.png\n\na.png\n")
    one_line_error(lst, "list.txt:3: expected 'image_path label_path'")
    lst.write_text("a.png a_label.png\nmissing.png a_label.png\n")
    one_line_error(lst, "list.txt:2: image file '%s' not found" % (tmp_path / "missing.png"))
    lst.write_text("a.png a_label.png\nb.png a_label.png\n")
    one_line_error(lst, "list.txt:2: label '%s' is 3x4 but image '%s' is 3x5"
                   % (tmp_path / "a_label.png", tmp_path / "b.png"), forward=True, batch=2, crop=3)
    lst.write_text("a.png a_label.png\nb.png b_label.png\n")
    one_line_error(lst, "list.txt:2: image '%s' is 3x5, but the batch is 3x4" % (tmp_path / "b.png"),
                   forward=True, batch=2)
    Image.fromarray(rgb_image(3, 4)).save(tmp_path / "rgb_label.png")
    lst.write_text("a.png rgb_label.png\n")
    one_line_error(lst, "list.txt:1: cannot read label '%s' (a label image must be palette or grey"
                   % (tmp_path / "rgb_label.png"), forward=True)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    lst.write_text("broken.png a_label.png\n")
    one_line_error(lst, "list.txt:1: cannot read image", forward=True, crop=3)
    one_line_error(tmp_path / "nope.txt", "cannot read the image list")
    lst.write_text("\n")
    one_line_error(lst, "names no image")


def test_deeplab_fields_parse_with_their_numbers():
    text = ('layer { name: "d" type: "ImageSegData" top: "data" top: "label" image_data_param '
            '{ source: "x" label_type: PIXEL ignore_label: 254 } }')
    layer = cn.proto.parse(text).layer[0]
    p = layer.image_data_param
    assert p.label_type == "PIXEL" and p.ignore_label == 254
    decoded = cn.proto.decode(cn.proto.encode(layer.image_data_param), "ImageDataParameter")
    assert decoded.label_type == "PIXEL" and decoded.ignore_label == 254
    # DeepLab's caffe.proto: ignore_label = 15 (int32, varint 254 = FE 01), label_type = 16 (enum, PIXEL = 2);
    # the tags are (15 << 3) | 0 = 120 and (16 << 3) | 0 = 128, a two-byte varint 80 01
    only = cn.proto.Message("ImageDataParameter", ignore_label=254, label_type="PIXEL")
    assert cn.proto.encode(only) == bytes([120, 0xFE, 0x01, 0x80, 0x01, 0x02])


class TestImageSegDataBattery(LayerTestCase):
    """A data layer: shapes, dtypes and blob counts only (no bottoms, no gradient)."""
    bottom_shapes = []
    top_shapes = [(1, 3, 3, 4), (1, 1, 3, 4), (1, 1, 1, 2)]
    phase = "TEST"
    gradient = None

    def setup_method(self):
        import pathlib
        import tempfile
        self.folder = tempfile.TemporaryDirectory()
        folder = pathlib.Path(self.folder.name)
        self.rgb, self.label = write_pair(folder, "a", 3, 4)
        (folder / "list.txt").write_text("a.png a_label.png\n")
        self.snippet = ('layer { name: "d" type: "ImageSegData" top: "data" top: "label" top: "dim" '
                        'transform_param { mean_value: %g mean_value: %g mean_value: %g scale: 0.5 } '
                        'image_data_param { source: "%s" batch_size: 1 } }' % (MEAN + (folder / "list.txt",)))

    def teardown_method(self):
        self.folder.cleanup()

    def expected_forward(self, bottoms):
        return [expected_data(self.rgb)[None], self.label[None, None].astype(np.float64), [[[[3, 4]]]]]
