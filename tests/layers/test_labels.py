"""layers/labels.py: integer labels, the ignore label, the range check's message (layer, blob, position, label),
the host-copy rule; and on the cuda backend (cudasim_labels_check.py under the simulator) the same message from
SoftmaxWithLoss and Accuracy with labels fed from the host and labels made on the device."""
import pathlib

import numpy as np
import pytest

from crfrnn_np import NetError
from crfrnn_np.blob import Blob
from crfrnn_np.layers.labels import check_range, host_labels, int_labels
from crfrnn_np.testing import make_layer, run_under_simulator

HERE = pathlib.Path(__file__).resolve().parent


def test_int_labels_truncate_and_mask_the_ignore_label():
    labels, valid = int_labels(np.array([[0.0, 2.9, -0.5, 255.0]]), 255)
    assert labels.tolist() == [[0, 2, 0, 255]]              # truncation toward zero, as astype(int64)
    assert valid.tolist() == [[True, True, True, False]]
    _, valid = int_labels(np.array([255.0]), None)
    assert valid.tolist() == [True]


@pytest.mark.parametrize("snippet", [
    'name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc"',
    'name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss"'])
def test_the_first_bad_label_is_named_with_its_position(snippet):
    labels = np.zeros((2, 1, 3, 3))
    labels[1, 0, 0, 2] = 3                                  # first in C order
    labels[1, 0, 2, 1] = -2
    layer, bottom, top = make_layer(snippet, [np.zeros((2, 3, 3, 3)), labels])
    with pytest.raises(NetError) as info:
        layer.forward(bottom, top)
    assert str(info.value).endswith("label 3 in bottom 'label' at (1, 0, 0, 2) is outside 0..2")
    assert "layer '%s'" % layer.name in str(info.value)


@pytest.mark.parametrize("snippet", [
    'name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" accuracy_param { ignore_label: 255 }',
    'name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" loss_param { ignore_label: 255 }'])
def test_an_out_of_range_ignore_label_is_not_checked(snippet):
    labels = np.full((1, 1, 2, 2), 255.0)
    labels[0, 0, 0, 0] = 1
    layer, bottom, top = make_layer(snippet, [np.zeros((1, 3, 2, 2)), labels])
    layer.forward(bottom, top)
    assert np.isfinite(top[0].data)
    labels[0, 0, 1, 1] = 254
    bottom[1].data = labels
    with pytest.raises(NetError, match=r"label 254 in bottom 'label' at \(0, 0, 1, 1\) is outside 0..2"):
        layer.forward(bottom, top)


def test_check_range_on_a_one_axis_blob():
    layer, bottom, _ = make_layer('name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc"',
                                  [np.zeros((3, 2)), np.array([0.0, 1.0, 2.0])])
    labels, valid = int_labels(bottom[1].data, None)
    with pytest.raises(NetError, match=r"label 2 in bottom 'label' at \(2\) is outside 0..1"):
        check_range(layer, bottom[1], labels, valid, 2)


def test_host_labels_only_when_the_host_copy_is_current():
    blob = Blob((2, 3), np.float32, "label")
    assert host_labels(blob) is None                       # never written: nothing to read on the host
    blob.data = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(host_labels(blob), np.arange(6).reshape(2, 3))
    blob._data.set_gpu(object())                            # a device layer wrote it (no device needed here)
    assert host_labels(blob) is None


@pytest.mark.cudasim
def test_device_label_check_under_simulator():
    """The cuda message equals the CPU's for labels from the host and labels made on the device; ignored
    labels give the CPU's values; a forward moves its inputs in and its outputs back, plus one read back of
    the first bad position for Accuracy when its labels exist only on the device."""
    out = run_under_simulator([HERE / "cudasim_labels_check.py"], ok="cudasim labels OK")
    for where in ("host", "device"):
        for name in ("SoftmaxWithLoss", "Accuracy"):
            assert "%s labels, %s: bad label raised" % (where, name) in out
            for title in ("good", "ignored"):
                assert "%s labels, %s, %s labels: cuda == cpu" % (where, name, title) in out
