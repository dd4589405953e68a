"""``crfrnn segment`` and ``crfrnn demo``: files written, pre-processing order (BGR), padding, resizing."""
import numpy as np
import pytest
from PIL import Image

from crfrnn_np import Net
from crfrnn_np.tools.main import main

SEG_NET = """
name: "tiny_seg"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 48 dim: 48 } } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
  convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "splitting" type: "Split" bottom: "score" top: "unary" top: "Q0" }
layer { name: "inference1" type: "MultiStageMeanfield" bottom: "unary" bottom: "Q0" bottom: "data" top: "pred"
  multi_stage_meanfield_param { num_iterations: 3 theta_alpha: 10 theta_beta: 10 theta_gamma: 2 } }
"""


@pytest.fixture
def seg_files(tmp_path):
    """The tiny net and weights whose unary says: class 1 = red channel, class 2 = blue channel, 0 = none."""
    model = tmp_path / "seg.prototxt"
    model.write_text(SEG_NET)
    net = Net(str(model))
    weight, bias = net.params["score"]
    weight.data[...] = 0
    weight.data[1, 2, 0, 0] = 0.1          # BGR blob: channel 2 is R − 122.68
    weight.data[2, 0, 0, 0] = 0.1          # channel 0 is B − 104.01
    bias.data[...] = [5.0, 0.0, 0.0]
    net.params["inference1"][1].data[0, 0] = 4.5 * np.eye(3)
    weights = tmp_path / "seg.caffemodel"
    net.save(str(weights))
    return model, weights


def two_colour_image(h, w):
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[:, : w // 2] = (250, 20, 20)
    rgb[:, w // 2:] = (20, 20, 250)
    return rgb


def run_segment(tmp_path, seg_files, rgb, *extra):
    model, weights = seg_files
    src = tmp_path / "in.png"
    Image.fromarray(rgb).save(src)
    out = tmp_path / "sub" / "out.png"
    rc = main(["segment", "--model", str(model), "--weights", str(weights), "--image", str(src),
               "--output", str(out)] + list(extra))
    assert rc == 0
    return out


def test_segment_pads_and_crops_back(tmp_path, seg_files):
    rgb = two_colour_image(30, 40)
    out = run_segment(tmp_path, seg_files, rgb, "--panel")
    with Image.open(out) as im:
        assert im.mode == "P" and im.size == (40, 30)
        assert im.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
        labels = np.asarray(im)
    expected = np.where(np.arange(40) < 20, 1, 2)[None, :].repeat(30, axis=0)
    np.testing.assert_array_equal(labels, expected)
    with Image.open(out.with_name("out_panel.png")) as panel:
        assert panel.size == (3 * 40 + 2 * 4, 30)


def test_segment_shrinks_large_images(tmp_path, seg_files):
    """A large image is segmented at the net's size and its labels scaled back to the input size."""
    rgb = two_colour_image(72, 96)
    out = run_segment(tmp_path, seg_files, rgb, "--panel")
    with Image.open(out) as im:
        assert im.size == (96, 72)             # the input's size
        labels = np.asarray(im)
    with Image.open(str(out)[:-4] + "_panel.png") as im:
        assert im.size[1] == 36                # segmented at longer side 96 -> the net's 48, aspect kept
    # nearest neighbour from 48 x 36: each label pixel is a 2 x 2 block
    assert np.array_equal(labels, np.repeat(np.repeat(labels[::2, ::2], 2, axis=0), 2, axis=1))


def test_segment_any_size(tmp_path, seg_files):
    rgb = two_colour_image(60, 70)
    out = run_segment(tmp_path, seg_files, rgb, "--any-size")
    with Image.open(out) as im:
        assert im.size == (70, 60)
        assert set(np.unique(np.asarray(im))) == {1, 2}


def test_segment_missing_image_is_one_line_error(tmp_path, seg_files, capsys):
    model, weights = seg_files
    rc = main(["segment", "--model", str(model), "--weights", str(weights), "--image", str(tmp_path / "nope.jpg"),
               "--output", str(tmp_path / "o.png")])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("crfrnn: error:") and "nope.jpg" in err[0]


def test_weights_load_by_layer_name(tmp_path, seg_files):
    """A net whose layers come in another order and with an extra layer picks the weights by name."""
    model, weights = seg_files
    reordered = SEG_NET.replace('layer { name: "input"', 'layer { name: "extra" type: "Input" top: "extra" '
                                'input_param { shape { dim: 1 } } }\nlayer { name: "input"')
    net = Net(reordered, weights=str(weights))
    assert net.params["score"][0].data[1, 2, 0, 0] == pytest.approx(0.1)
    np.testing.assert_array_equal(net.params["inference1"][1].data[0, 0], 4.5 * np.eye(3))


def test_segment_without_weights_warns(tmp_path, seg_files, capsys):
    model, weights = seg_files
    src = tmp_path / "in.png"
    Image.fromarray(two_colour_image(30, 40)).save(src)
    assert main(["segment", "--model", str(model), "--image", str(src), "--output", str(tmp_path / "o.png")]) == 0
    err = capsys.readouterr().err
    assert "warning: no --weights" in err and "meaningless" in err
    assert main(["segment", "--model", str(model), "--weights", str(weights), "--image", str(src),
                 "--output", str(tmp_path / "o.png")]) == 0
    assert "warning" not in capsys.readouterr().err
