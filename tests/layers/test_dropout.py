"""Dropout: Caffe's statistics test, TEST-phase identity, shared random stream (spec caffe.md §3.7, §4.8)."""
import math

import numpy as np
import pytest

from crfrnn_np import random as crfrnn_random
from crfrnn_np.errors import NetError
from crfrnn_np.gradcheck import GradientChecker
from crfrnn_np.testing import LayerTestCase, make_layer


def dropout(x, ratio=None, phase="TRAIN", inplace=False, extra=""):
    param = "dropout_param { dropout_ratio: %r }" % ratio if ratio is not None else ""
    top = "x" if inplace else "y"
    return make_layer('name: "drop" type: "Dropout" bottom: "x" top: "%s" %s %s' % (top, param, extra), [x.copy()],
                      phase=phase)


@pytest.mark.parametrize("ratio", [None, 0.75])
def test_train_statistics(rng, ratio):
    p = 0.5 if ratio is None else ratio
    x = rng.standard_normal((4, 5, 6, 7))
    crfrnn_random.set_seed(1701)
    layer, bottom, top = dropout(x, ratio)
    layer.forward(bottom, top)
    y = top[0].data
    scale = 1.0 / (1.0 - p)
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x[kept] * scale)
    dropped = 1.0 - kept.mean()
    assert abs(dropped - p) <= 1.96 * math.sqrt(p * (1 - p) / x.size)


def test_backward_uses_the_forward_mask(rng):
    x = rng.standard_normal((3, 50))
    layer, bottom, top = dropout(x, 0.3)
    layer.forward(bottom, top)
    dy = rng.standard_normal(x.shape)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    keep = top[0].data != 0
    scale = 1.0 / (1.0 - float(np.float32(0.3)))  # dropout_ratio is a proto float
    np.testing.assert_allclose(bottom[0].diff, np.where(keep, dy * scale, 0.0), rtol=1e-15)


def test_mask_comes_from_the_shared_stream(rng):
    x = rng.standard_normal((10, 10)) + 5.0
    layer, bottom, top = dropout(x)
    outs = []
    for _ in range(2):
        crfrnn_random.set_seed(42)
        layer.forward(bottom, top)
        outs.append(top[0].data.copy())
    np.testing.assert_array_equal(outs[0], outs[1])
    layer.forward(bottom, top)
    assert not np.array_equal(outs[0], top[0].data)


@pytest.mark.parametrize("how", ["net phase", "layer phase"])
def test_test_phase_is_identity(rng, how):
    x = rng.standard_normal((2, 3, 4, 5))
    if how == "net phase":
        layer, bottom, top = dropout(x, 0.5, phase="TEST")
    else:
        layer, bottom, top = dropout(x, 0.5, phase="TRAIN", extra="phase: TEST")
    assert layer.phase == "TEST"
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x)
    dy = rng.standard_normal(x.shape)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, dy)


def test_in_place_train(rng):
    x = rng.standard_normal((5, 8))
    layer, bottom, top = dropout(x, 0.5, inplace=True)
    assert top[0] is bottom[0]
    layer.forward(bottom, top)
    y = bottom[0].data
    assert np.all((y == 0) | (y == x * 2.0))


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_bad_ratio(ratio):
    with pytest.raises(NetError, match="dropout_ratio"):
        dropout(np.zeros(3), ratio)


def test_gradient(rng):
    layer, bottom, top = dropout(rng.standard_normal((2, 3, 4, 5)), 0.5)
    GradientChecker(1e-2, 1e-3, 1701).check_gradient_eltwise(layer, bottom, top)


class TestDropoutBattery(LayerTestCase):
    """TRAIN phase: the mask comes from the shared stream, re-seeded before every forward."""
    snippet = 'layer { name: "drop" type: "Dropout" bottom: "x" top: "y" dropout_param { dropout_ratio: 0.3 } }'
    bottom_shapes = [(2, 3, 4)]
    top_shapes = [(2, 3, 4)]
    gradient = "eltwise"
