"""The Layer base and the registry: registration, unknown types, blob-count rules, loss weights and the
backend dispatch with its CPU fallback."""
import numpy as np
import pytest

import crfrnn_np.layer as layer_module
import crfrnn_np.layers  # noqa: F401  (registers the layer types)
from crfrnn_np import NetError, proto
from crfrnn_np.layer import Layer, create_layer, layer_types, register_layer
from crfrnn_np.testing import make_layer


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry, so the test's layer types vanish afterwards."""
    monkeypatch.setattr(layer_module, "_REGISTRY", dict(layer_module._REGISTRY))


def test_types_are_sorted_and_registered_twice_is_an_error(registry):
    types = layer_types()
    assert types == sorted(types) and {"Convolution", "MultiStageMeanfield", "SoftmaxWithLoss"} <= set(types)

    @register_layer("Twice")
    class First(Layer):
        pass
    assert First.type == "Twice" and "Twice" in layer_types()
    with pytest.raises(ValueError, match="'Twice' registered twice"):
        register_layer("Twice")(type("Second", (Layer,), {}))


def test_unknown_type_lists_the_known_ones():
    param = proto.parse('layer { name: "x" type: "Nope" }').layer[0]
    with pytest.raises(NetError, match=r":1:\d+: layer 'x': unknown layer type 'Nope' \(known types: Accuracy, "):
        create_layer(param)


class Doubler(Layer):
    """y = 2 x on the CPU; y = 3 x "on the GPU", to see which one runs."""
    min_num_bottom = 1
    max_num_bottom = 2
    exact_num_top = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        top[0].data = 2 * bottom[0].data


class GpuDoubler(Doubler):
    def forward_gpu(self, bottom, top):
        top[0].data = 3 * bottom[0].data


def test_blob_counts_loss_weights_and_dispatch(registry):
    register_layer("Doubler")(Doubler)
    register_layer("GpuDoubler")(GpuDoubler)
    snippet = 'layer { name: "d" type: "%s" bottom: "x" top: "y" %s }'
    with pytest.raises(NetError, match="layer 'd' \\(Doubler\\): needs at most 2 bottom blob\\(s\\), got 3"):
        make_layer(snippet % ("Doubler", ""), [np.ones(2)] * 3)
    with pytest.raises(NetError, match="needs exactly 1 top blob"):
        make_layer('layer { name: "d" type: "Doubler" bottom: "x" top: "y" top: "z" }', [np.ones(2)])
    with pytest.raises(NetError, match="loss_weight must be given once per top"):
        make_layer(snippet % ("Doubler", "loss_weight: 1 loss_weight: 2"), [np.ones(2)])
    layer, bottom, top = make_layer(snippet % ("Doubler", "loss_weight: 0.5"), [np.arange(3.0)])
    assert np.all(top[0].diff == 0.5)                                  # a loss top's diff is its weight
    assert layer.forward(bottom, top) == 0.5 * 2 * 3.0                 # the weighted loss
    with pytest.raises(NetError, match="cannot propagate a gradient"):  # no backward_cpu: Caffe's LOG(FATAL)
        layer.backward(top, [True], bottom)
    for backend, factor in (("cpu", 2), ("cuda", 3)):
        layer, bottom, top = make_layer(snippet % ("GpuDoubler", ""), [np.ones(2)], backend=backend)
        layer.forward(bottom, top)
        assert np.all(top[0].data == factor)
    layer, bottom, top = make_layer(snippet % ("Doubler", ""), [np.ones(2)], backend="cuda")
    layer.forward(bottom, top)                                         # no forward_gpu: the CPU code runs
    assert np.all(top[0].data == 2)


def test_where_prefix_and_param_spec():
    layer, _, _ = make_layer('layer { name: "r" type: "ReLU" bottom: "x" top: "y" param { lr_mult: 3 } }',
                             [np.ones(1)])
    assert layer.where().endswith("layer 'r' (ReLU): ") and layer.where().startswith("<string>:1:")
    assert layer.param_spec(0).lr_mult == 3 and layer.param_spec(5).lr_mult == 1
    assert repr(layer) == "<ReLU layer 'r'>"
