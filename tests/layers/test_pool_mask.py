"""The MAX Pooling mask top: refused in float32 where it cannot hold the plane indices exactly; on the cuda
backend made and read on the device, equal to the CPU, with no host copy of it (cudasim_pool_mask_check.py
under the simulator)."""
import pathlib

import numpy as np
import pytest

from crfrnn_np import ShapeError
from crfrnn_np.blob import Blob
from crfrnn_np.testing import make_layer, run_under_simulator

HERE = pathlib.Path(__file__).resolve().parent
MAX = 'name: "pool" type: "Pooling" bottom: "x" top: "y" top: "m" pooling_param { kernel_size: 2 stride: 2 }'


def test_float32_mask_top_refused_beyond_exact_indices():
    """float32 holds every integer up to 2^24: the largest index h*W + w of a 4097 x 4097 plane (2^24 + 8192)
    is not among them; 4096 x 4097 (largest index 2^24 + 4095) neither, 4096 x 4096 (2^24 - 1) is fine."""
    with pytest.raises(ShapeError, match=r"mask top 'm' is float32, .* H\*W - 1 = 16785408 .*: use float64"):
        make_layer(MAX, [Blob((1, 1, 4097, 4097), np.float32, "x")], dtype=np.float32)
    with pytest.raises(ShapeError, match="mask top"):
        make_layer(MAX, [Blob((1, 1, 4097, 4096), np.float32, "x")], dtype=np.float32)
    for shape, dtype in (((1, 1, 4096, 4096), np.float32), ((1, 1, 4097, 4097), np.float64)):
        layer, _, top = make_layer(MAX, [Blob(shape, dtype, "x")], dtype=dtype)
        assert top[1].shape == top[0].shape == (1, 1) + tuple(-(-s // 2) for s in shape[2:])   # CEIL
    layer, _, _ = make_layer(MAX.replace(' top: "m"', ''), [Blob((1, 1, 4097, 4097), np.float32, "x")],
                             dtype=np.float32)                           # the layer's own mask is int64


@pytest.mark.cudasim
def test_mask_top_on_the_device_under_simulator():
    out = run_under_simulator([HERE / "cudasim_pool_mask_check.py"], ok="cudasim pool mask OK")
    for name, forward in (("outputs", "{'to_device': 1, 'to_host': 2}"),
                          ("consumed", "{'to_device': 1, 'to_host': 1}")):
        for dtype in ("float32", "float64"):
            assert ("%s %s: cuda == cpu, transfers forward %s, backward {'to_device': 1, 'to_host': 1}"
                    % (name, dtype, forward)) in out
