"""Prototxt reader/writer: the grammar of caffe.md 1.0 case by case, errors with exact positions, anchors."""
import math

import numpy as np
import pytest

import crfrnn_np
from crfrnn_np import proto
from crfrnn_np.errors import ParseError, SchemaError


def layer(text):
    return proto.parse(text, "LayerParameter")


# -- grammar ------------------------------------------------------------------------------------------------
def test_comments_whitespace_and_separators():
    p = layer("# header\nname: 'a' # trailing\n\t\v\f\r type: \"ReLU\", bottom: 'x'; top: 'y'\n# end")
    assert (p.name, p.type, p.bottom, p.top) == ("a", "ReLU", ["x"], ["y"])


def test_optional_colon_before_message_and_angle_brackets():
    p = layer("convolution_param { num_output: 2 } pooling_param: { pool: AVE } "
              "inner_product_param < num_output: 7 > relu_param: < negative_slope: 0.5 >")
    assert p.convolution_param.num_output == 2
    assert p.pooling_param.pool == "AVE"
    assert p.inner_product_param.num_output == 7
    assert p.relu_param.negative_slope == 0.5


def test_mismatched_brackets_are_errors():
    with pytest.raises(ParseError, match=r"^<string>:1:35: expected a field name of ConvolutionParameter, found .>."):
        layer("convolution_param { num_output: 2 > ")


def test_scalar_needs_colon():
    with pytest.raises(ParseError, match=r"^<string>:1:6: expected ':' after field name 'name', found "):
        layer('name "a"')


def test_repeated_by_repetition_and_list_syntax_mixed():
    p = proto.parse("dim: 1 dim: [3, 224] dim: 0x10 dim: [] dim: 010", "BlobShape")
    assert p.dim == [1, 3, 224, 16, 8]
    q = layer("param: [{lr_mult: 1}, {lr_mult: 2 decay_mult: 0}] param { name: 'w' }")
    assert [s.lr_mult for s in q.param] == [1.0, 2.0, 1.0]
    assert q.param[1].decay_mult == 0.0 and q.param[2].name == "w"
    assert layer("bottom: ['a', \"b\"] bottom: 'c'").bottom == ["a", "b", "c"]


def test_list_syntax_only_for_repeated_fields():
    with pytest.raises(SchemaError, match=r"^<string>:1:7: list syntax .* 'name' is not repeated"):
        layer("name: ['a']")
    with pytest.raises(SchemaError, match=r"^<string>:1:20: list syntax"):
        layer("convolution_param: [{num_output: 1}]")


def test_list_needs_commas():
    with pytest.raises(ParseError, match=r"^<string>:1:9: expected ',' between list elements, found '2'"):
        proto.parse("dim: [1 2]", "BlobShape")


def test_enum_by_name_and_number_case_sensitive():
    assert layer("pooling_param { pool: STOCHASTIC }").pooling_param.pool == "STOCHASTIC"
    assert layer("pooling_param { pool: 1 }").pooling_param.pool == "AVE"
    assert layer("phase: TEST").phase == "TEST"
    with pytest.raises(SchemaError, match=r"^<string>:1:23: unknown value 'max' of enum PoolMethod"):
        layer("pooling_param { pool: max }")
    with pytest.raises(SchemaError, match=r"^<string>:1:23: 7 is not a value of enum PoolMethod"):
        layer("pooling_param { pool: 7 }")
    with pytest.raises(ParseError, match=r"^<string>:1:23: expected a value of enum PoolMethod"):
        layer("pooling_param { pool: 'MAX' }")


@pytest.mark.parametrize("literal,value", [
    ("1e-3", 1e-3), (".5", 0.5), ("5.", 5.0), ("1.5E+2", 150.0), ("0.65f", 0.65), ("10f", 10.0),
    ("10F", 10.0), ("3", 3.0), ("0", 0.0), ("-2", -2.0), ("- 2.5", -2.5), ("-\n# c\n .25", -0.25),
    ("inf", math.inf), ("-inf", -math.inf), ("Infinity", math.inf), ("-INF", -math.inf),
])
def test_float_literals(literal, value):
    got = layer("relu_param { negative_slope: %s }" % literal).relu_param.negative_slope
    assert got == float(np.float32(value))


def test_float_nan_and_double_precision():
    assert math.isnan(layer("relu_param { negative_slope: nan }").relu_param.negative_slope)
    assert math.isnan(layer("relu_param { negative_slope: -NaN }").relu_param.negative_slope)
    # float fields hold float32 values, double fields keep full precision
    assert layer("relu_param { negative_slope: 0.1 }").relu_param.negative_slope == float(np.float32(0.1))
    assert proto.parse("double_data: 0.1", "BlobProto").double_data == [0.1]


def test_hex_and_octal_not_allowed_for_floats():
    with pytest.raises(SchemaError, match=r"^<string>:1:30: hexadecimal or octal literal 0x10"):
        layer("relu_param { negative_slope: 0x10 }")
    with pytest.raises(SchemaError, match=r"^<string>:1:30: hexadecimal or octal literal 017"):
        layer("relu_param { negative_slope: 017 }")


def test_integers_decimal_hex_octal_and_negative():
    p = proto.parse("dim: 0 dim: 0x1F dim: 0X1f dim: 017 dim: -5 dim: - 0x10 dim: 9223372036854775807",
                    "BlobShape")
    assert p.dim == [0, 31, 31, 15, -5, -16, 2 ** 63 - 1]


def test_integer_range_checks():
    assert layer("accuracy_param { axis: -2147483648 }").accuracy_param.axis == -2 ** 31
    assert layer("convolution_param { num_output: 4294967295 }").convolution_param.num_output == 2 ** 32 - 1
    with pytest.raises(SchemaError, match=r"^<string>:1:24: integer 2147483648 is out of range for int32"):
        layer("accuracy_param { axis: 2147483648 }")
    with pytest.raises(SchemaError, match=r"^<string>:1:33: integer 4294967296 is out of range for uint32"):
        layer("convolution_param { num_output: 4294967296 }")
    with pytest.raises(SchemaError, match=r"^<string>:1:33: integer -1 is out of range for uint32 field"):
        layer("convolution_param { num_output: -1 }")
    with pytest.raises(SchemaError, match=r"out of range for int64"):
        proto.parse("dim: 9223372036854775808", "BlobShape")


def test_float_literal_for_int_field_is_an_error():
    with pytest.raises(SchemaError, match=r"^<string>:1:33: expected an integer for uint32 field 'num_output', "
                                          r"found '1.5'"):
        layer("convolution_param { num_output: 1.5 }")


def test_number_glued_to_identifier_and_bad_octal():
    with pytest.raises(ParseError, match=r"^<string>:1:33: need space between number '3' and the following 'x'"):
        layer("convolution_param { num_output: 3xyz }")
    with pytest.raises(ParseError, match=r"^<string>:1:6: number '09' starts with 0 but is not a valid octal"):
        proto.parse("dim: 09", "BlobShape")


@pytest.mark.parametrize("literal,value", [
    ("true", True), ("True", True), ("t", True), ("1", True),
    ("false", False), ("False", False), ("f", False), ("0", False),
])
def test_bools(literal, value):
    assert layer("convolution_param { bias_term: %s }" % literal).convolution_param.bias_term is value


def test_bad_bool():
    with pytest.raises(SchemaError, match=r"^<string>:1:32: expected true or false for bool field 'bias_term', "
                                          r"found 'TRUE'"):
        layer("convolution_param { bias_term: TRUE }")
    with pytest.raises(SchemaError, match=r"found '2'"):
        layer("convolution_param { bias_term: 2 }")


def test_string_quotes_and_concatenation():
    assert layer("name: 'single' ").name == "single"
    assert layer('name: "dou" \'ble\' "s"').name == "doubles"
    assert layer("name: 'it''s'").name == "its"
    assert layer("name: \"a'b\" ").name == "a'b"
    assert layer("name: 'a\"b' ").name == 'a"b'


def test_string_escapes():
    text = r"""name: "\n\t\r\a\b\f\v\?\\\'\"" """
    assert layer(text).name == "\n\t\r\a\b\f\v?\\'\""
    assert layer(r"name: '\101\60\0\x41\x4a\x7'").name == "A0\x00AJ\x07"
    assert layer(r"name: '\u00e9\U0001F600'").name == "\u00e9\U0001F600"
    assert layer(r"name: '\ud83d\ude00'").name == "\U0001F600"
    assert layer(r"name: '\303\251'").name == "\u00e9"  # octal escapes are UTF-8 bytes
    assert proto.parse(r"data: '\377\x00'", "Datum").data == b"\xff\x00"


@pytest.mark.parametrize("text,col,msg", [
    (r"name: 'a\qb'", 7, r"invalid escape sequence '\\q'"),
    (r"name: '\x'", 7, r"invalid escape sequence '\\x'"),
    (r"name: '\u12'", 7, r"invalid escape sequence '\\u'"),
    (r"name: '\U00110000'", 7, "invalid unicode escape"),
    (r"name: '\ud83d'", 7, "unpaired surrogate"),
    (r"name: '\777'", 7, "octal escape"),
])
def test_bad_escapes(text, col, msg):
    with pytest.raises(ParseError, match=r"^<string>:1:%d: %s" % (col, msg)):
        layer(text)


def test_raw_newline_in_string_is_an_error():
    with pytest.raises(ParseError, match=r"^<string>:2:7: unterminated string literal"):
        layer("type: 'ReLU'\nname: 'ab\ncd'")
    with pytest.raises(ParseError, match=r"^<string>:1:7: unterminated string literal"):
        layer("name: 'abc")


def test_duplicate_singular_field_is_an_error():
    with pytest.raises(SchemaError, match=r"^<string>:2:3: non-repeated field 'name' of LayerParameter is given "
                                          r"more than once"):
        layer("name: 'a'\n  name: 'b'")
    with pytest.raises(SchemaError, match=r"^<string>:1:42: non-repeated field 'pooling_param'"):
        layer("pooling_param { pool: MAX } phase: TRAIN pooling_param { pad: 1 }")
    with pytest.raises(SchemaError, match=r"^<string>:1:34: non-repeated field 'pool' of PoolingParameter"):
        layer("pooling_param { pool: MAX pad: 0 pool: AVE }")


def test_same_field_in_different_messages_is_fine():
    p = proto.parse("layer { name: 'a' } layer { name: 'b' }")
    assert [x.name for x in p.layer] == ["a", "b"]


def test_unknown_field_is_an_error_with_position():
    text = "name: 'net'\nlayer {\n  name: 'c'\n  kernel_size: 3\n}\n"
    with pytest.raises(SchemaError, match=r"^net\.prototxt:4:3: unknown field 'kernel_size' in LayerParameter$"):
        proto.parse(text, filename="net.prototxt")


def test_extensions_rejected():
    with pytest.raises(ParseError, match=r"^<string>:1:1: extension fields"):
        layer("[ext.foo]: 1")


def test_unclosed_and_stray_braces():
    with pytest.raises(ParseError, match=r"^<string>:3:1: unexpected end of input: missing '}' to close the block "
                                         r"opened at <string>:1:7"):
        proto.parse("layer {\n name: 'a'\n")
    with pytest.raises(ParseError, match=r"^<string>:1:11: expected a field name of NetParameter, found '}'"):
        proto.parse("name: 'a' }")


def test_missing_value():
    with pytest.raises(ParseError, match=r"^<string>:1:6: expected a quoted string for string field 'name', "
                                         r"found end of input"):
        layer("name:")


def test_invalid_character_and_utf8():
    with pytest.raises(ParseError, match=r"^<string>:2:4: invalid character '@'"):
        layer("name: 'a'\ntop@")
    with pytest.raises(ParseError, match=r"^f\.prototxt:2:8: invalid UTF-8 byte 0xFF"):
        proto.parse(b"name: 'x'\n# \xc3\xa9 abc\xff", filename="f.prototxt")
    # UTF-8 text inside strings and comments is fine
    assert layer("# é comment\nname: 'é'".encode("utf-8")).name == "é"


def test_required_fields_of_multi_stage_meanfield():
    ok = layer("multi_stage_meanfield_param { num_iterations: 5 theta_alpha: 160 theta_beta: 3 theta_gamma: 3 }")
    assert ok.multi_stage_meanfield_param.num_iterations == 5
    text = "name: 'crf'\ntype: 'MultiStageMeanfield'\n  multi_stage_meanfield_param {\n" \
           "    num_iterations: 10 theta_alpha: 160 theta_gamma: 3\n  }\n"
    with pytest.raises(SchemaError, match=r"^m\.prototxt:3:3: missing required field 'theta_beta' in "
                                          r"MultiStageMeanfieldParameter 'multi_stage_meanfield_param'"):
        proto.parse(text, "LayerParameter", filename="m.prototxt")


def test_required_at_top_level():
    with pytest.raises(SchemaError, match=r"^<string>:1:1: missing required field 'max' in ClipParameter"):
        proto.parse("min: 1", "ClipParameter")


def test_crf_step_layer_params():
    p = layer("permutohedral_param { kernel: BILATERAL theta_alpha: 160 theta_beta: 3 } "
              "compatibility_param { num_output: 21 diagonal_str: '-1' weight_filler { type: 'constant' } }")
    assert p.permutohedral_param.kernel == "BILATERAL"
    assert p.permutohedral_param.theta_gamma == 10.0
    assert layer("").permutohedral_param.kernel == "SPATIAL"
    assert p.compatibility_param.num_output == 21 and p.compatibility_param.diagonal_str == "-1"


def test_defaults_and_presence():
    p = layer("pooling_param { kernel_size: 2 }")
    assert p.pooling_param.stride == 1 and not p.pooling_param.has("stride")
    assert p.pooling_param.round_mode == "CEIL"
    assert not p.has("loss_param") and p.loss_param.normalization == "VALID"
    assert p.phase == "TRAIN" and proto.parse("").state.phase == "TEST"
    s = proto.parse("", "SolverParameter")
    assert (s.solver_mode, s.snapshot_format, s.type, s.regularization_type) == ("GPU", "BINARYPROTO", "SGD", "L2")
    assert (s.random_seed, s.clip_gradients, s.average_loss, s.iter_size) == (-1, -1.0, 1, 1)
    assert s.delta == float(np.float32(1e-8)) and s.test_initialization is True
    assert proto.parse("", "FillerParameter").type == "constant"
    assert proto.parse("", "FillerParameter").sparse == -1


def test_where_positions():
    text = "name: 'n'\nlayer {\n  name: 'c'\n  convolution_param {\n    kernel_size: 3\n  }\n}\n"
    net = proto.parse(text, filename="x.prototxt")
    assert net.where() == "x.prototxt:1:1"
    assert net.where("name") == "x.prototxt:1:1"
    assert net.where("layer") == "x.prototxt:2:1"
    c = net.layer[0]
    assert c.where() == "x.prototxt:2:1" and c.where("name") == "x.prototxt:3:3"
    cp = c.convolution_param
    assert cp.where() == "x.prototxt:4:3" and cp.where("kernel_size") == "x.prototxt:5:5"


def test_unknown_type_name():
    with pytest.raises(SchemaError, match="unknown message type"):
        proto.parse("", "NoSuchMessage")


def test_errors_are_crfrnn_errors():
    assert issubclass(SchemaError, crfrnn_np.Error) and issubclass(ParseError, crfrnn_np.Error)


def test_read_prototxt_missing_file(tmp_path):
    with pytest.raises(ParseError, match="cannot read file"):
        proto.read_prototxt(tmp_path / "nope.prototxt")


# -- writer ---------------------------------------------------------------------------------------------------
def test_to_text_canonical_form():
    p = layer("top: 'b' name: 'a' relu_param { negative_slope: 0.1 } param { lr_mult: 2 } "
              "pooling_param { pool: AVE }")
    assert proto.to_text(p) == ('name: "a"\ntop: "b"\nparam {\n  lr_mult: 2.0\n}\n'
                                'pooling_param {\n  pool: AVE\n}\nrelu_param {\n  negative_slope: 0.1\n}\n')


def test_to_text_round_trips_strange_values():
    p = layer(r"name: '\x00\"\\\n é\377' loss_weight: [inf, -inf, 1e-30, 3.4028235e38] "
              r"accuracy_param { axis: -2147483648 } propagate_down: [true, false]")
    q = layer(proto.to_text(p))
    assert q == p
    assert q.name == p.name and q.loss_weight[0] == math.inf


ANCHOR_PROTOTXTS = [
    ("caffe_lenet", "lenet.prototxt"), ("caffe_lenet", "lenet_train_test.prototxt"),
    ("caffe_lenet", "lenet_solver.prototxt"),
    ("caffe_cifar10_quick", "cifar10_quick.prototxt"), ("caffe_cifar10_quick", "cifar10_quick_train_test.prototxt"),
    ("caffe_cifar10_quick", "cifar10_quick_solver.prototxt"),
    ("caffe_cifar10_quick", "cifar10_quick_solver_lr1.prototxt"),
    ("caffe_cifar10_quick", "v1_legacy", "prediction_example_v1.prototxt"),
    ("crfasrnn", "TVG_CRFRNN_COCO_VOC.prototxt"), ("crfasrnn", "TVG_CRFRNN_new_deploy.prototxt"),
    ("crfasrnn", "TVG_CRFRNN_new_traintest.prototxt"), ("crfasrnn", "TVG_CRFRNN_new_solver.prototxt"),
    ("crfasrnn", "crfrnn_branch", "TVG_CRFRNN_new_deploy.prototxt"),
    ("crfasrnn", "crfrnn_branch", "TVG_CRFRNN_new_traintest.prototxt"),
]


@pytest.mark.parametrize("parts", ANCHOR_PROTOTXTS, ids=lambda p: "/".join(p))
def test_anchor_prototxts_parse_and_round_trip(anchor, parts):
    path = anchor(*parts)
    type_name = "SolverParameter" if "solver" in parts[-1] else "NetParameter"
    msg = proto.read_prototxt(path, type_name)
    assert msg.where().startswith(str(path))
    again = proto.parse(proto.to_text(msg), type_name)
    assert again == msg
    if type_name == "NetParameter":
        assert len(msg.layer) + len(msg.layers) > 0


def test_lenet_deploy_content(anchor):
    net = proto.read_prototxt(anchor("caffe_lenet", "lenet.prototxt"))
    assert net.name == "LeNet"
    assert [x.type for x in net.layer] == ["Input", "Convolution", "Pooling", "Convolution", "Pooling",
                                           "InnerProduct", "ReLU", "InnerProduct", "Softmax"]
    assert net.layer[0].input_param.shape[0].dim == [64, 1, 28, 28]
    conv1 = net.layer[1]
    assert conv1.convolution_param.kernel_size == [5] and conv1.convolution_param.weight_filler.type == "xavier"
    assert [s.lr_mult for s in conv1.param] == [1.0, 2.0]


def test_solver_content(anchor):
    s = proto.read_prototxt(anchor("caffe_lenet", "lenet_solver.prototxt"), "SolverParameter")
    assert (s.test_iter, s.test_interval, s.lr_policy, s.max_iter) == ([100], 500, "inv", 10000)
    assert s.base_lr == float(np.float32(0.01)) and s.power == 0.75 and s.solver_mode == "GPU"


def test_crfrnn_anchor_params(anchor):
    new = proto.read_prototxt(anchor("crfasrnn", "TVG_CRFRNN_new_deploy.prototxt"))
    branch = proto.read_prototxt(anchor("crfasrnn", "crfrnn_branch", "TVG_CRFRNN_new_deploy.prototxt"))
    for net in (new, branch):
        crf = [x for x in net.layer if x.type == "MultiStageMeanfield"][0].multi_stage_meanfield_param
        assert (crf.num_iterations, crf.theta_alpha, crf.theta_beta, crf.theta_gamma) == (10, 160.0, 3.0, 3.0)
    crf = [x for x in branch.layer if x.type == "MultiStageMeanfield"][0].multi_stage_meanfield_param
    assert crf.spatial_filter_weights_str.split() == ["3"] * 21
