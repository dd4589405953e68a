"""Crop: Caffe's test_crop_layer.cpp cases (spec caffe.md §2, §3.9, §4.5) and automatic offsets
(spec crfasrnn.md §4.2 notes)."""
import numpy as np
import pytest

import crfrnn_np as cn
from crfrnn_np import proto
from crfrnn_np.errors import NetError, ShapeError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.layers.crop import CropLayer, LayerGraph, coordinate_map, round_half_away
from crfrnn_np.testing import LayerTestCase, make_layer, parse_layer


def crop(b0, b1, param="", dtype=np.float64):
    return make_layer('name: "crop" type: "Crop" bottom: "a" bottom: "b" top: "c" crop_param { %s }' % param,
                      [b0, b1], dtype=dtype)


@pytest.fixture
def bottoms(rng):
    return rng.standard_normal((2, 4, 5, 4)), rng.standard_normal((2, 3, 4, 2))


def run(layer, bottom, top):
    layer.forward(bottom, top)
    return top[0].data


def test_all_axes(bottoms):
    layer, bottom, top = crop(*bottoms, "axis: 0")
    y = run(layer, bottom, top)
    assert y.shape == (2, 3, 4, 2)
    for n, c, h, w in np.ndindex(*y.shape):
        assert y[n, c, h, w] == bottoms[0][n, c, h, w]


def test_default_axis_is_2(bottoms):
    layer, bottom, top = crop(*bottoms)
    y = run(layer, bottom, top)
    assert y.shape == (2, 4, 4, 2)
    for n, c, h, w in np.ndindex(*y.shape):
        assert y[n, c, h, w] == bottoms[0][n, c, h, w]


def test_axis_minus_one(bottoms):
    layer, bottom, top = crop(*bottoms, "axis: -1")
    assert run(layer, bottom, top).shape == (2, 4, 5, 2)
    np.testing.assert_array_equal(top[0].data, bottoms[0][:, :, :, :2])


def test_dimension_check_ignores_axes_before_axis(rng, bottoms):
    layer, bottom, top = crop(bottoms[0], rng.standard_normal((2, 5, 4, 2)))
    assert run(layer, bottom, top).shape == (2, 4, 4, 2)


def test_all_axes_with_offsets(bottoms):
    layer, bottom, top = crop(*bottoms, "axis: 0 offset: 0 offset: 1 offset: 1 offset: 2")
    y = run(layer, bottom, top)
    assert y.shape == (2, 3, 4, 2)
    for n, c, h, w in np.ndindex(*y.shape):
        assert y[n, c, h, w] == bottoms[0][n, c + 1, h + 1, w + 2]


def test_hw_offsets(bottoms):
    layer, bottom, top = crop(*bottoms, "axis: 2 offset: 1 offset: 2")
    y = run(layer, bottom, top)
    assert y.shape == (2, 4, 4, 2)
    for n, c, h, w in np.ndindex(*y.shape):
        assert y[n, c, h, w] == bottoms[0][n, c, h + 1, w + 2]


def test_single_offset_applies_to_every_axis(rng):
    x = rng.standard_normal((1, 2, 6, 6))
    layer, bottom, top = crop(x, np.zeros((1, 2, 3, 3)), "offset: 2")
    np.testing.assert_array_equal(run(layer, bottom, top), x[:, :, 2:5, 2:5])


@pytest.fixture
def bottoms_5d(rng):
    return rng.standard_normal((2, 4, 5, 4, 2)), rng.standard_normal((2, 3, 4, 2, 1))


def test_5d(bottoms_5d):
    layer, bottom, top = crop(*bottoms_5d, "axis: 2 offset: 1 offset: 2 offset: 0")
    y = run(layer, bottom, top)
    assert y.shape == (2, 4, 4, 2, 1)
    for n, c, z, h, w in np.ndindex(*y.shape):
        assert y[n, c, z, h, w] == bottoms_5d[0][n, c, z + 1, h + 2, w]


def test_backward_places_top_diff_in_the_slice(rng, bottoms):
    layer, bottom, top = crop(*bottoms, "axis: 2 offset: 1 offset: 2")
    run(layer, bottom, top)
    dy = rng.standard_normal(top[0].shape)
    top[0].diff[...] = dy
    bottom[0].diff[...] = 7.0
    bottom[1].diff[...] = 7.0
    layer.backward(top, [True, True], bottom)
    expected = np.zeros(bottoms[0].shape)
    expected[:, :, 1:5, 2:4] = dy
    np.testing.assert_array_equal(bottom[0].diff, expected)
    np.testing.assert_array_equal(bottom[1].diff, 0.0)


@pytest.mark.parametrize("param", ["axis: 0", "axis: 2 offset: 1 offset: 2"])
def test_gradient(bottoms, param):
    layer, bottom, top = crop(*bottoms, param)
    GradientChecker(1e-2, 1e-3).check_gradient_exhaustive(layer, bottom, top, check_bottom=0)


def test_gradient_5d(bottoms_5d):
    layer, bottom, top = crop(*bottoms_5d, "axis: 2 offset: 1 offset: 2 offset: 0")
    GradientChecker(1e-2, 1e-3).check_gradient(layer, bottom, top, check_bottom=0)


def test_errors(bottoms):
    with pytest.raises(ShapeError, match="invalid crop in axis 3"):
        crop(*bottoms, "offset: 1 offset: 3")
    with pytest.raises(NetError, match="2 offsets"):
        crop(*bottoms, "axis: 1 offset: 1 offset: 1")
    with pytest.raises(ShapeError, match="same number of axes"):
        crop(bottoms[0], np.zeros((2, 3, 4)))


# -- automatic offsets -----------------------------------------------------------------------------------------

def layer_param(text):
    return parse_layer("layer { %s }" % text)


def test_coordinate_maps():
    conv = layer_param('name: "c" type: "Convolution" convolution_param { num_output: 1 kernel_size: 3 '
                       'pad: 100 stride: 2 dilation: 2 }')
    # extent 2*(3-1)+1 = 5: x = 2y + (5-1)/2 - 100 = 2y - 98
    assert coordinate_map(conv, 4) == [(1.0, 0.0), None, (2.0, -98.0), (2.0, -98.0)]
    deconv = layer_param('name: "d" type: "Deconvolution" convolution_param { num_output: 1 kernel_size: 4 '
                         'stride: 2 pad: 1 }')
    # inverse of y = 2x + 1.5 - 1  =>  x = (y - 0.5) / 2
    assert coordinate_map(deconv, 4)[2:] == [(0.5, -0.25), (0.5, -0.25)]
    pool = layer_param('name: "p" type: "Pooling" pooling_param { kernel_h: 3 kernel_w: 2 stride: 2 }')
    assert coordinate_map(pool, 4) == [(1.0, 0.0), (1.0, 0.0), (2.0, 1.0), (2.0, 0.5)]
    assert coordinate_map(layer_param('name: "r" type: "ReLU"'), 4) == [(1.0, 0.0)] * 4
    assert coordinate_map(layer_param('name: "i" type: "InnerProduct"'), 2) is None
    assert coordinate_map(layer_param('name: "j" type: "Concat"'), 4) == [(1.0, 0.0), None, (1.0, 0.0), (1.0, 0.0)]
    with pytest.raises(NetError, match="layer 'bad'.*kernel gives 3 values"):
        coordinate_map(layer_param('name: "bad" type: "Convolution" convolution_param { kernel_size: 3 '
                                   'kernel_size: 3 kernel_size: 3 }'), 4)
    c = layer_param('name: "k" type: "Crop" crop_param { axis: 2 offset: 3 offset: 4 }')
    assert coordinate_map(c, 4) == [(1.0, 0.0), (1.0, 0.0), (1.0, 3.0), (1.0, 4.0)]


def test_round_half_away():
    assert [round_half_away(v) for v in (2.5, 3.5, -2.5, 2.49, 0.0)] == [3, 4, -3, 2, 0]


TINY = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 pad: 100 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up" type: "Deconvolution" bottom: "pool" top: "up"
        convolution_param { num_output: 2 kernel_size: 4 stride: 2 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "crop" type: "Crop" bottom: "up" bottom: "data" top: "out" }
"""
# By hand (x = coordinate in the bottom, y in the top):
#   conv  k3 pad 100:  x_data = y + 1 - 100            = y - 99
#   pool  k2 s2:       x_conv = 2y + 0.5
#   up    k4 s2:       x_pool = (y - 1.5) / 2
#   => x_conv = y - 1, x_data = y - 100: the data's origin lies at 100 in 'up' (10 -> 208 -> 104 -> 210).
TINY_OFFSET = 100


def tiny_graph():
    graph, crop_layer = LayerGraph(), None
    for lp in proto.parse(TINY).layer:
        if lp.type == "Crop":
            crop_layer = CropLayer(lp)
            return graph, crop_layer
        graph.add(lp, lp.bottom, lp.top)


def test_infer_offsets_tiny_graph():
    graph, crop_layer = tiny_graph()
    assert crop_layer.infer_offsets(graph, 4) == [TINY_OFFSET, TINY_OFFSET]
    assert crop_layer.inferred_offsets == [TINY_OFFSET, TINY_OFFSET]


def test_net_uses_inferred_offsets():
    net = cn.Net(TINY, dtype="float64")
    x = np.random.default_rng(3).standard_normal((1, 1, 10, 10))
    net.forward(data=x)
    assert net.blobs["up"].shape == (1, 2, 210, 210)
    assert net.layer_dict["crop"].offsets == [0, 0, TINY_OFFSET, TINY_OFFSET]
    np.testing.assert_array_equal(net.blobs["out"].data, net.blobs["up"].data[:, :, 100:110, 100:110])


def test_explicit_offset_wins_over_inference():
    net = cn.Net(TINY.replace('top: "out"', 'top: "out" crop_param { offset: 7 }'), dtype="float64")
    assert net.layer_dict["crop"].offsets == [0, 0, 7, 7]


FCN = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { kernel_size: 2 stride: 2 } }
layer { name: "score" type: "Convolution" bottom: "pool1" top: "score"
        convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "drop" type: "Dropout" bottom: "score" top: "score" }
layer { name: "up" type: "Deconvolution" bottom: "score" top: "up"
        convolution_param { num_output: 2 kernel_size: 4 stride: 2 } }
layer { name: "crop" type: "Crop" bottom: "up" bottom: "conv1" top: "upc" }
layer { name: "fuse" type: "Eltwise" bottom: "upc" bottom: "conv1" top: "fused" }
"""
# conv1 k3 p1 is the identity map; pool1: x_conv1 = 2y + 0.5; score k1: identity; up: x_score = (y - 1.5) / 2
# => x_conv1 = y - 1: offset 1 (8 -> 4 -> 10, crop back to 8). 'conv1' is also rewritten in place by relu1 and
# fans out (a Split is inserted), which the walk must see through.


def test_net_with_in_place_layers_and_splits():
    net = cn.Net(FCN, dtype="float64")
    assert net.layer_dict["crop"].offsets == [0, 0, 1, 1]
    net.forward(data=np.ones((1, 1, 8, 8)))
    assert net.blobs["fused"].shape == (1, 2, 8, 8)


def graph_of(text):
    graph, layers = LayerGraph(), {}
    for lp in proto.parse(text).layer:
        obj = CropLayer(lp) if lp.type == "Crop" else lp
        layers[lp.name] = obj
        graph.add(obj, lp.bottom, lp.top)
    return graph, layers


def test_inference_errors():
    graph, _ = graph_of(FCN)
    swapped = CropLayer(layer_param('name: "bad" type: "Crop" bottom: "conv1" bottom: "up" top: "z"'))
    with pytest.raises(NetError, match="negative crop offset -1"):
        swapped.infer_offsets(graph, 4)
    scales = CropLayer(layer_param('name: "bad" type: "Crop" bottom: "conv1" bottom: "pool1" top: "z"'))
    with pytest.raises(NetError, match="different scales"):
        scales.infer_offsets(graph, 4)
    channels = CropLayer(layer_param('name: "bad" type: "Crop" bottom: "up" bottom: "conv1" top: "z" '
                                     'crop_param { axis: 1 }'))
    with pytest.raises(NetError, match="axis 1"):
        channels.infer_offsets(graph, 4)


def test_no_common_ancestor_keeps_zero_offsets(rng):
    text = """
    layer { name: "in" type: "Input" top: "a" top: "b"
            input_param { shape { dim: 1 dim: 1 dim: 6 dim: 6 } shape { dim: 1 dim: 1 dim: 3 dim: 3 } } }
    layer { name: "crop" type: "Crop" bottom: "a" bottom: "b" top: "c" }
    """
    graph, layers = graph_of(text)
    with pytest.raises(NetError, match="no common ancestor"):
        layers["crop"].infer_offsets(graph, 4)
    assert layers["crop"].infer_offsets(graph, 4, required=False) is None
    net = cn.Net(text, dtype="float64")
    assert net.layer_dict["crop"].offsets == [0, 0, 0, 0]


def test_crfrnn_deploy_offsets(anchor):
    """The published deploy net has Crop layers without offsets; the coordinate maps give 5, 9 and 31
    (spec crfasrnn.md §4.2, matching CAFFE-BRANCH's explicit offsets)."""
    net_param = proto.read_prototxt(str(anchor("crfasrnn", "TVG_CRFRNN_new_deploy.prototxt")))
    graph, found = LayerGraph(), []
    for lp in net_param.layer:
        obj = lp
        if lp.type == "Crop":
            assert not lp.crop_param.offset
            obj = CropLayer(lp)
            found.append(obj.infer_offsets(graph, 4))
        graph.add(obj, lp.bottom, lp.top)
    assert found == [[5, 5], [9, 9], [31, 31]]


class TestCropBattery(LayerTestCase):
    """Bottom 1 gives only the size: its diff is zero (finite differences see no dependence either)."""
    snippet = ('layer { name: "crop" type: "Crop" bottom: "a" bottom: "b" top: "c" '
               'crop_param { axis: 2 offset: 1 offset: 2 } }')
    bottom_shapes = [(2, 2, 5, 6), (1, 1, 3, 3)]
    top_shapes = [(2, 2, 3, 3)]
    gradient = "exhaustive"
    bad_bottom_shapes = [[(2, 2, 5, 6), (1, 1, 5, 3)], [(2, 2, 5, 6), (1, 1, 3)]]

    def expected_forward(self, bottoms):
        return [bottoms[0][:, :, 1:4, 2:5]]
