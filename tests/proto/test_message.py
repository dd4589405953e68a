"""Message: proto2 semantics in Python (defaults, presence, repeated fields, sub-messages, enums by name or
number), deep copies, equality, and errors for unknown fields."""
import numpy as np
import pytest

from crfrnn_np.proto import ENUMS, Message


def test_defaults_and_presence():
    cp = Message("ConvolutionParameter")
    assert cp.bias_term is True and cp.group == 1 and cp.num_output == 0 and cp.axis == 1
    assert not cp.has("num_output") and not cp.has("kernel_size")
    cp.num_output = 0                              # set to the default value: present all the same
    assert cp.has("num_output")
    cp.clear("num_output")
    assert not cp.has("num_output")
    lp = Message("LayerParameter")
    assert lp.convolution_param.group == 1 and not lp.has("convolution_param")   # default instance, not stored
    lp.mutable("convolution_param").num_output = 4
    assert lp.has("convolution_param") and lp.convolution_param.num_output == 4


def test_repeated_fields_and_add():
    lp = Message("LayerParameter", name="l", bottom=("a", "b"))
    assert lp.bottom == ["a", "b"] and lp.has("bottom") and not lp.has("top")
    lp.top.append("c")
    spec = lp.add("param", lr_mult=2)
    assert lp.has("top") and lp.param[0] is spec and spec.lr_mult == 2 and spec.decay_mult == 1
    bp = Message("BlobProto", data=np.arange(3, dtype=np.float64))
    assert bp.data.dtype == np.float32 and bp.data.shape == (3,)
    with pytest.raises(AttributeError, match="not a repeated message field"):
        lp.add("bottom")
    with pytest.raises(AttributeError, match="not a singular message field"):
        lp.mutable("param")


def test_enums_by_name_or_number():
    pp = Message("PoolingParameter")
    assert pp.pool == "MAX"                        # the first value is the default
    pp.pool = ENUMS["PoolMethod"].values["AVE"]
    assert pp.pool == "AVE"
    with pytest.raises(ValueError, match="7 is not a value of enum PoolMethod"):
        pp.pool = 7


def test_unknown_field_names_the_message():
    with pytest.raises(AttributeError, match="message LayerParameter has no field 'nme'"):
        Message("LayerParameter").nme
    with pytest.raises(AttributeError):
        Message("LayerParameter", nme="x")


def test_list_fields_copy_and_equality():
    a = Message("LayerParameter", type="ReLU", name="r", top=["y"])
    assert [f.name for f, _ in a.list_fields()] == ["name", "type", "top"]        # field-number order
    b = a.copy()
    assert b == a and b is not a
    b.top.append("z")
    assert a.top == ["y"] and b != a
    assert Message("BlobProto", data=np.ones(2)) == Message("BlobProto", data=[1.0, 1.0])
    a.set_where("name", "f.prototxt:3:9")
    assert a.where("name") == "f.prototxt:3:9" and a.where("type") == "" and a.copy().where("name") == a.where("name")
    assert repr(Message("ReLUParameter", negative_slope=0.5)) == "<ReLUParameter negative_slope=0.5>"
