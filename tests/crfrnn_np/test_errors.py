"""The error classes: one base a caller can catch, and messages that say where."""
import pytest

import crfrnn_np
from crfrnn_np import errors
from crfrnn_np.gradcheck import GradientCheckError

CLASSES = ["ParseError", "SchemaError", "NetError", "ShapeError", "WeightsError", "SolverError", "BackendError"]


def test_every_error_is_a_crfrnn_error_exported_by_the_package():
    for name in CLASSES:
        cls = getattr(errors, name)
        assert issubclass(cls, crfrnn_np.Error) and getattr(crfrnn_np, name) is cls
    assert issubclass(errors.SchemaError, errors.ParseError)
    assert not issubclass(GradientCheckError, crfrnn_np.Error)    # a failed check is a test failure


def test_parse_error_says_file_line_and_column(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "n"\nlayer { name: "a" typo: "b" }\n')
    with pytest.raises(errors.SchemaError, match=r"bad\.prototxt:2:\d+: .*typo"):
        crfrnn_np.proto.read_prototxt(str(path))


def test_net_error_names_the_layer_and_blob():
    with pytest.raises(errors.NetError, match="layer 'b'.*'nowhere'"):
        crfrnn_np.Net(crfrnn_np.proto.parse(
            'layer { name: "a" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
            'layer { name: "b" type: "ReLU" bottom: "nowhere" top: "y" }'))
