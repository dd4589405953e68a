"""The package's public API (ARCHITECTURE.md: pycaffe's shape), and its version."""
import pathlib
import re

import numpy as np

import crfrnn_np as cn

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_public_names():
    for name in ("Net", "Blob", "Layer", "get_solver", "GradientChecker", "register_layer", "layer_types",
                 "create_layer", "proto", "gradcheck", "Error", "ParseError", "SchemaError", "NetError",
                 "ShapeError", "WeightsError", "SolverError", "BackendError"):
        assert hasattr(cn, name), name


def test_version_is_the_projects():
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert cn.__version__ == declared


def test_get_solver_from_text(tmp_path):
    (tmp_path / "n.prototxt").write_text(
        'layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 1 } }')
    solver = cn.get_solver('net: "%s"\nbase_lr: 0.1\nlr_policy: "fixed"\ntype: "Adam"' % (tmp_path / "n.prototxt"))
    assert solver.type == "Adam" and solver.iter == 0
    assert solver.net.params["ip"][0].data.shape == (1, 2) and solver.net.params["ip"][0].data.dtype == np.float32
