"""Split insertion (Caffe's ``InsertSplits``): the names Caffe gives, in-place layers and loss weights."""
from crfrnn_np import proto
from crfrnn_np.insert_splits import insert_splits


INSERTION = """
name: 'TestNetwork'
layer { name: 'data' type: 'Input' top: 'data' top: 'label'
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: 'innerprod1' type: 'InnerProduct' inner_product_param { num_output: 10 } bottom: 'data' top: 'innerprod1' }
layer { name: 'innerprod2' type: 'InnerProduct' inner_product_param { num_output: 10 } bottom: 'data' top: 'innerprod2' }
layer { name: 'innerprod3' type: 'InnerProduct' inner_product_param { num_output: 10 } bottom: 'data' top: 'innerprod3' }
layer { name: 'loss1' type: 'EuclideanLoss' bottom: 'innerprod1' bottom: 'innerprod2' }
layer { name: 'loss2' type: 'EuclideanLoss' bottom: 'innerprod2' bottom: 'innerprod3' }
"""


def _names(layers):
    return [(lp.name, list(lp.bottom), list(lp.top), list(lp.loss_weight)) for lp in layers]


def test_split_insertion_names():
    layers = insert_splits(proto.parse(INSERTION).layer)
    names = [lp.name for lp in layers]
    assert names == ["data", "data_data_0_split", "innerprod1", "innerprod2", "innerprod2_innerprod2_0_split",
                     "innerprod3", "loss1", "loss2"]
    split = layers[1]
    assert list(split.bottom) == ["data"]
    assert list(split.top) == ["data_data_0_split_0", "data_data_0_split_1", "data_data_0_split_2"]
    assert list(layers[2].bottom) == ["data_data_0_split_0"]
    assert list(layers[5].bottom) == ["data_data_0_split_2"]
    assert list(layers[6].bottom) == ["innerprod1", "innerprod2_innerprod2_0_split_0"]
    assert list(layers[7].bottom) == ["innerprod2_innerprod2_0_split_1", "innerprod3"]


def test_split_insertion_in_place_and_loss_weight():
    text = """
    layer { name: 'data' type: 'Input' top: 'data' input_param { shape { dim: 2 dim: 3 } } }
    layer { name: 'innerprod1' type: 'InnerProduct' inner_product_param { num_output: 4 }
            bottom: 'data' top: 'innerprod1' }
    layer { name: 'relu1' type: 'ReLU' bottom: 'innerprod1' top: 'innerprod1' loss_weight: 2.5 }
    layer { name: 'innerprod2' type: 'InnerProduct' inner_product_param { num_output: 4 }
            bottom: 'innerprod1' top: 'innerprod2' }
    """
    layers = insert_splits(proto.parse(text).layer)
    by_name = {lp.name: lp for lp in layers}
    split = by_name["innerprod1_relu1_0_split"]
    assert list(split.top) == ["innerprod1_relu1_0_split_0", "innerprod1_relu1_0_split_1"]
    assert list(split.loss_weight) == [2.5, 0.0]
    assert list(by_name["relu1"].loss_weight) == [0.0]
    assert list(by_name["innerprod2"].bottom) == ["innerprod1_relu1_0_split_0"]
