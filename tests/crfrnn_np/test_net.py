"""Net construction and running: split insertion (Caffe's names), in-place layers, need-backward analysis,
loss weights, reshaping, parameter sharing, errors that say where."""
import numpy as np
import pytest

import crfrnn_np as cn

# Caffe's test_split_layer.cpp TestInsertion, with single-quoted names as in the original.


SIMPLE = """
name: "simple"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 4
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
"""


def test_net_basics_and_in_place():
    net = cn.Net(SIMPLE, dtype="float64")
    assert net.inputs == ["data"]
    assert net.outputs == ["ip"]
    assert list(net.blobs) == ["data", "conv", "ip"]
    assert net.layer_names == ["input", "conv", "relu", "ip"]
    assert net.top_vecs[1][0] is net.top_vecs[2][0]          # in place: one blob
    assert list(net.params) == ["conv", "ip"]
    assert net.params["conv"][0].shape == (2, 3, 3, 3)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    out = net.forward(data=x)
    W, b = net.params["conv"][0].data, net.params["conv"][1].data
    conv = np.zeros((2, 2, 2, 2))
    for n in range(2):
        for o in range(2):
            for i in range(2):
                for j in range(2):
                    conv[n, o, i, j] = np.sum(x[n, :, i:i + 3, j:j + 3] * W[o]) + b[o]
    relu = np.maximum(conv, 0)
    expected = relu.reshape(2, -1) @ net.params["ip"][0].data.T + net.params["ip"][1].data
    np.testing.assert_allclose(out["ip"], expected, rtol=1e-12, atol=1e-12)


def test_no_backward_without_loss_and_force_backward():
    net = cn.Net(SIMPLE, dtype="float64")
    assert not any(net.layer_need_backward)        # no loss: nothing needs a gradient
    net2 = cn.Net("force_backward: true\n" + SIMPLE, dtype="float64")
    assert all(net2.layer_need_backward)
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4))
    net2.forward(data=x)
    g = np.random.default_rng(2).standard_normal((2, 3))
    diffs = net2.backward(ip=g)
    # numeric check of the input gradient of E = <g, ip(x)>
    h = 1e-6
    k = (1, 2, 3, 1)
    xp, xm = x.copy(), x.copy()
    xp[k] += h
    xm[k] -= h
    fp = np.sum(g * net2.forward(data=xp)["ip"])
    fm = np.sum(g * net2.forward(data=xm)["ip"])
    assert diffs["data"][k] == pytest.approx((fp - fm) / (2 * h), rel=1e-6, abs=1e-8)


def test_reshape_on_new_input_shape():
    net = cn.Net(SIMPLE.replace("InnerProduct", "ReLU").replace(
        "inner_product_param { num_output: 3 weight_filler { type: \"gaussian\" std: 0.5 } }", ""))
    out = net.forward(data=np.ones((1, 3, 7, 6), np.float32))
    assert out["ip"].shape == (1, 2, 5, 4)
    assert net.blobs["data"].shape == (1, 3, 7, 6)


def test_loss_weight_and_param_sharing():
    text = """
    layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 4 dim: 5 } } }
    layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "a"
            param { name: "shared_w" } param { name: "shared_b" }
            inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 } } }
    layer { name: "ip2" type: "InnerProduct" bottom: "a" top: "b"
            param { name: "shared_w" } param { name: "shared_b" }
            inner_product_param { num_output: 5 } }
    layer { name: "out" type: "ReLU" bottom: "b" top: "c" loss_weight: 3 }
    """
    net = cn.Net(text, dtype="float64")
    assert net.params["ip1"][0] is net.params["ip2"][0]
    assert len(net.learnable_params) == 2
    x = np.random.default_rng(3).standard_normal((4, 5))
    net.blobs["x"].data = x
    loss = net.forward_prefilled()
    W, b = net.params["ip1"][0].data, net.params["ip1"][1].data
    a = x @ W.T + b
    c = np.maximum(a @ W.T + b, 0)
    assert loss == pytest.approx(3 * c.sum(), rel=1e-12)
    net.clear_param_diffs()
    net.backward()
    # d loss / dW by finite differences: the shared diff is the sum of both uses
    h = 1e-6
    W0 = W.copy()
    net.params["ip1"][0].data[0, 1] = W0[0, 1] + h
    fp = net.forward_prefilled()
    net.params["ip1"][0].data[0, 1] = W0[0, 1] - h
    fm = net.forward_prefilled()
    net.params["ip1"][0].data[0, 1] = W0[0, 1]
    assert net.params["ip1"][0].diff[0, 1] == pytest.approx((fp - fm) / (2 * h), rel=1e-5)


def test_phase_filtering():
    text = """
    layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }
    layer { name: "drop" type: "Dropout" bottom: "x" top: "y" include { phase: TRAIN } }
    layer { name: "relu" type: "ReLU" bottom: "x" top: "z" exclude { phase: TRAIN } }
    """
    assert cn.Net(text, phase="TRAIN").layer_names == ["data", "drop"]
    assert cn.Net(text, phase="TEST").layer_names == ["data", "relu"]
    with pytest.raises(cn.NetError):
        cn.Net(text, phase="VALIDATE")


@pytest.mark.parametrize("text, needle", [
    ('layer { name: "a" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
     'layer { name: "b" type: "ReLU" bottom: "nope" top: "y" }', "2:"),
    ('layer { name: "a" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
     'layer { name: "b" type: "ReLU" bottom: "x" top: "x2" }\n'
     'layer { name: "c" type: "ReLU" bottom: "x" top: "x2" }', "multiple sources"),
    ('layer { name: "a" type: "NoSuchLayer" top: "x" }', "NoSuchLayer"),
])
def test_graph_errors_say_where(text, needle):
    with pytest.raises(cn.Error) as e:
        cn.Net(text)
    assert needle in str(e.value)


def test_forward_rejects_unknown_inputs():
    net = cn.Net(SIMPLE)
    with pytest.raises(cn.Error, match="not an input|no blob"):
        net.forward(label=np.zeros(2))
    with pytest.raises(cn.ShapeError):
        net.forward(data=np.zeros((3, 4)))


def test_absurd_input_shape_fails_before_allocating():
    text = 'input: "data" input_dim: 100000 input_dim: 100000 input_dim: 1000 input_dim: 1000\n' \
           'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }'
    with pytest.raises(cn.ShapeError, match="elements"):
        cn.Net(text)


def test_net_larger_than_memory_fails_with_size_message():
    # each blob is 1.2e9 floats (under Caffe's per-blob limit); eight of them need 38 GB
    text = 'input: "data" input_dim: 1 input_dim: 3 input_dim: 20000 input_dim: 20000\n' + "".join(
        'layer { name: "r%d" type: "ReLU" bottom: "%s" top: "r%d" }\n' % (i, "data" if i == 0 else "r%d" % (i - 1), i)
        for i in range(7))
    with pytest.raises(cn.ShapeError, match="GB"):
        cn.Net(text)


def test_input_reshape_to_absurd_size_fails_cleanly():
    net = cn.Net(SIMPLE.replace("InnerProduct", "ReLU").replace(
        "inner_product_param { num_output: 3 weight_filler { type: \"gaussian\" std: 0.5 } }", ""))
    with pytest.raises(cn.ShapeError):
        net.forward(data=np.broadcast_to(np.float32(0), (1, 3, 30000, 30000)))


def test_keep_blobs_false_frees_intermediates_and_gives_the_same_outputs():
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 4))
    full = cn.Net(SIMPLE, dtype="float64")
    lean = cn.Net(SIMPLE, dtype="float64", keep_blobs=False)
    for name in full.params:
        for a, b in zip(full.params[name], lean.params[name]):
            b.data = a.data
    expected = full.forward(data=x)["ip"].copy()
    got = lean.forward(data=x)["ip"]
    np.testing.assert_array_equal(got, expected)
    assert not lean.blobs["conv"].has_data()         # the conv/relu activation was released
    assert full.blobs["conv"].has_data()
    np.testing.assert_array_equal(lean.forward(data=x)["ip"], expected)   # and re-created on the next pass
    with pytest.raises(cn.NetError, match="keep_blobs"):
        lean.backward()
