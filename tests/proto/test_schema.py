"""The caffe.proto subset: field numbers and defaults as caffe.proto gives them (written out here), the CRF
extensions, and the schema's own consistency (numbers unique, every type resolved, V1 names complete)."""
import numpy as np

from crfrnn_np.proto import ENUMS, SCHEMA, Message
from crfrnn_np.proto import schema

# caffe.proto's LayerParameter numbers of the layer-type sub-messages (spec caffe.md §1)
CAFFE_LAYER_PARAMS = {"accuracy_param": 102, "concat_param": 104, "convolution_param": 106, "dropout_param": 108,
                      "eltwise_param": 110, "hdf5_data_param": 112, "inner_product_param": 117,
                      "pooling_param": 121, "relu_param": 123, "sigmoid_param": 124, "softmax_param": 125,
                      "tanh_param": 127, "reshape_param": 133, "flatten_param": 135, "input_param": 143,
                      "crop_param": 144, "loss_param": 101}


def test_layer_parameter_numbers():
    fields = SCHEMA["LayerParameter"].fields
    for name, number in CAFFE_LAYER_PARAMS.items():
        assert fields[name].number == number, name
    basics = {"name": 1, "type": 2, "bottom": 3, "top": 4, "loss_weight": 5, "param": 6, "blobs": 7,
              "phase": 10, "propagate_down": 11}
    for name, number in basics.items():
        assert fields[name].number == number, name
    # the CRF-RNN CPU build's number (the crfrnn branch's 1000 is read as an alias on the wire), and this
    # project's step layers above them
    assert fields["multi_stage_meanfield_param"].number == 146
    assert schema.WIRE_ALIASES[("LayerParameter", 1000)] == "multi_stage_meanfield_param"
    assert SCHEMA["V1LayerParameter"].fields["multi_stage_meanfield_param"].number == 44
    assert fields["permutohedral_param"].number == 1001 and fields["compatibility_param"].number == 1002
    assert SCHEMA["MultiStageMeanfieldParameter"].fields["engine"].number == 1001


def test_defaults_as_caffe_proto_gives_them():
    assert Message("DropoutParameter").dropout_ratio == np.float32(0.5)
    assert Message("ConvolutionParameter").bias_term is True
    assert Message("PoolingParameter").pool == "MAX" and Message("EltwiseParameter").operation == "SUM"
    sp = Message("SolverParameter")
    assert sp.delta == np.float32(1e-8) and sp.delta != 1e-8          # float fields keep single precision
    assert sp.momentum2 == np.float32(0.999) and sp.rms_decay == np.float32(0.99)
    assert sp.snapshot_format == "BINARYPROTO" and sp.type == "SGD"
    assert Message("FillerParameter").type == "constant" and Message("FillerParameter").std == 1.0
    assert Message("SoftmaxParameter").axis == 1 and Message("ConcatParameter").axis == 1


def test_numbers_unique_and_types_resolved():
    for mtype in SCHEMA.values():
        numbers = [f.number for f in mtype.fields.values()]
        assert len(numbers) == len(set(numbers)), mtype.name
        for f in mtype.fields.values():
            assert f.kind != "?", "%s.%s: unresolved type %s" % (mtype.name, f.name, f.type_name)
            if f.kind == "message":
                assert f.type_name in SCHEMA
            if f.kind == "enum":
                assert f.type_name in ENUMS


def test_v1_type_names_cover_the_enum():
    assert set(schema.V1_TYPE_NAMES) == set(ENUMS["V1LayerType"].values)
    assert ENUMS["V1LayerType"].values["MULTI_STAGE_MEANFIELD"] == 42
    assert ENUMS["V1LayerType"].values["CONVOLUTION"] == 4 and schema.V1_TYPE_NAMES["SOFTMAX_LOSS"] == "SoftmaxWithLoss"
