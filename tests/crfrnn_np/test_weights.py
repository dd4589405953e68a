"""Weights from real Caffe files: the published LeNet on the MNIST test set, the CIFAR-10 quick model in
binaryproto, HDF5 and legacy V1 formats (spec caffe.md §7), and round trips through our own writers."""
import os

import numpy as np
import pytest

import crfrnn_np as cn

LENET_FIRST_LOGITS = np.array([
    [-3.0647, 0.0659, 0.1572, 3.6047, -3.9565, -2.4661, -11.2302, 14.8798, -2.3711, 1.9829],
    [4.7469, 5.6584, 21.1616, -1.6999, -7.4807, -8.0661, 1.4474, -5.7421, -0.7942, -7.2009],
    [0.0246, 12.3502, -1.1435, -4.0842, -0.0213, -1.9549, -1.5128, 2.2729, -0.2630, -4.1605],
])
LENET_FIRST_ERRORS = [151, 247, 340, 445, 449, 582, 659, 684, 720, 947, 1014, 1039, 1112, 1226, 1232, 1242,
                      1247, 1299, 1319, 1393]


def test_lenet_full_mnist_test_set(anchor, mnist_test_set):
    images, labels = mnist_test_set
    assert images.shape == (10000, 1, 28, 28)
    net = cn.Net(anchor("caffe_lenet", "lenet.prototxt"), weights=anchor("caffe_lenet", "lenet_iter_10000.caffemodel"))
    w = net.params["conv1"][0].data
    np.testing.assert_allclose(w.ravel()[:5], [0.0483467, 0.1820914, 0.0290899, -0.0485537, 0.0770909], atol=1e-6)
    np.testing.assert_allclose(net.params["conv1"][1].data[:3], [-0.01805757, -0.01233158, -0.00230027], atol=1e-7)
    preds, logits = [], []
    for start in range(0, 10000, 1000):
        x = images[start:start + 1000].astype(np.float32) * np.float32(0.00390625)
        out = net.forward(data=x)
        preds.append(out["prob"].argmax(axis=1))
        if start == 0:
            logits = net.blobs["ip2"].data[:3].copy()
    preds = np.concatenate(preds)
    accuracy = float(np.mean(preds == labels))
    assert accuracy == pytest.approx(0.9914, abs=1e-9)
    wrong = np.flatnonzero(preds != labels)
    assert list(wrong[:20]) == LENET_FIRST_ERRORS
    np.testing.assert_allclose(logits, LENET_FIRST_LOGITS, atol=1e-3)


CIFAR_EXPECTED = {
    "cifar10_quick_iter_4000.caffemodel":
        [4.67880, 2.63315, 2.77040, -1.08784, 2.40650, -4.62247, -5.26629, 1.46125, 5.45787, 3.81368],
    "cifar10_quick_iter_5000.caffemodel.h5":
        [5.57025, 3.01489, 2.26959, -1.66563, 2.13111, -5.87708, -5.31793, 0.44232, 5.21039, 2.84869],
    os.path.join("v1_legacy", "cifar10_quick_iter_5000.caffemodel"):
        [2.55519, 2.34530, -0.61021, -2.80187, -1.71821, -4.70827, -4.79464, -2.66069, 3.27299, 0.83680],
}


def cifar_input():
    i = np.arange(3 * 32 * 32)
    return (((i % 97) / 97.0 - 0.5) * 100).reshape(1, 3, 32, 32)


@pytest.mark.parametrize("weights", sorted(CIFAR_EXPECTED))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cifar10_quick_three_formats(anchor, weights, dtype):
    net = cn.Net(anchor("caffe_cifar10_quick", "cifar10_quick.prototxt"), dtype=dtype,
                 weights=anchor("caffe_cifar10_quick", *weights.split(os.sep)))
    net.forward(data=cifar_input())
    tol = 2e-3 if dtype == "float32" else 1e-4
    np.testing.assert_allclose(net.blobs["ip2"].data.ravel(), CIFAR_EXPECTED[weights], atol=tol)


def test_round_trip_caffemodel_hdf5_caffemodel(anchor, tmp_path):
    model = anchor("caffe_cifar10_quick", "cifar10_quick.prototxt")
    net = cn.Net(model, weights=anchor("caffe_cifar10_quick", "cifar10_quick_iter_4000.caffemodel"))
    h5 = tmp_path / "w.caffemodel.h5"
    net.save(h5)
    net2 = cn.Net(model, weights=h5)
    bin_path = tmp_path / "w.caffemodel"
    net2.save(bin_path)
    net3 = cn.Net(model, weights=bin_path)
    for name in net.params:
        for a, b in zip(net.params[name], net3.params[name]):
            assert np.array_equal(a.data, b.data)
    assert sorted(os.listdir(tmp_path)) == ["w.caffemodel", "w.caffemodel.h5"]   # no temporaries left
    x = cifar_input()
    assert np.array_equal(net.forward(data=x)["prob"], net3.forward(data=x)["prob"])


def test_float64_net_writes_double_data(tmp_path):
    text = """layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
            inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }"""
    net = cn.Net(text, dtype="float64")
    net.params["ip"][0].data[0, 0] = 1 + 1e-12
    net.save(tmp_path / "w.caffemodel")
    net2 = cn.Net(text, dtype="float64", weights=tmp_path / "w.caffemodel")
    assert net2.params["ip"][0].data[0, 0] == 1 + 1e-12


def test_weight_mismatch_errors(anchor, tmp_path):
    text = """layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }"""
    net = cn.Net(text)
    net.save(tmp_path / "a.caffemodel")
    net.save(tmp_path / "a.h5")
    other = cn.Net(text.replace("num_output: 2", "num_output: 4"))
    for path in ("a.caffemodel", "a.h5"):
        with pytest.raises(cn.WeightsError, match="ip") as e:
            other.copy_from(tmp_path / path)
        assert "2 3" in str(e.value) and "4 3" in str(e.value)
    nobias = cn.Net(text.replace("num_output: 2", "num_output: 2 bias_term: false"))
    with pytest.raises(cn.WeightsError, match="number of blobs"):
        nobias.copy_from(tmp_path / "a.caffemodel")
    (tmp_path / "junk.caffemodel").write_bytes(b"\xff\xff\xff\xff garbage")
    with pytest.raises(cn.Error):
        net.copy_from(tmp_path / "junk.caffemodel")
    with pytest.raises(cn.WeightsError, match="does not exist"):
        net.copy_from(tmp_path / "missing.caffemodel")
