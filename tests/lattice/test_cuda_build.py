"""The lattice index built on the device (lattice/cuda_build.py): every array equal to the host build's, under
the simulator in a subprocess (tests/lattice/cudasim_cuda_build_check.py) and on a real GPU when one is
present."""
import os
import pathlib
import sys

import numpy as np
import pytest

from crfrnn_np.testing import run_under_simulator

HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.cudasim
def test_device_build_equals_host_build_under_simulator():
    run_under_simulator([HERE / "cudasim_cuda_build_check.py"], ok="cudasim cuda_build OK")


def test_device_build_equals_host_build_on_gpu():
    """On a real GPU (atomics racing for real), at a size where many threads insert the same keys."""
    from crfrnn_np.lattice import bilateral_features, cuda as lattice_cuda, spatial_features
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or not lattice_cuda.cuda_available():
        pytest.skip("no CUDA GPU")
    sys.path.insert(0, str(HERE))
    from cudasim_cuda_build_check import check_same_arrays
    image = np.random.default_rng(3).integers(0, 256, size=(3, 120, 100)).astype(np.float32)
    check_same_arrays(spatial_features(120, 100, 3.0), "spatial 120x100")
    check_same_arrays(bilateral_features(image, 80.0, 13.0), "bilateral 120x100")
