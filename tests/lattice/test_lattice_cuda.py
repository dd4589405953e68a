"""The numba.cuda lattice: under the simulator in a subprocess (plain ``pytest tests`` runs it), and on a
real GPU when one is present."""
import os
import pathlib

import numpy as np
import pytest

import crfrnn_np
from crfrnn_np.testing import run_under_simulator

HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.cudasim
def test_cuda_lattice_under_simulator():
    run_under_simulator([HERE / "cudasim_lattice_check.py"], ok="cudasim lattice OK")


def test_cuda_backend_without_device_is_a_clear_error():
    from crfrnn_np.lattice import cuda as lattice_cuda
    if lattice_cuda.cuda_available():
        pytest.skip("a CUDA device (or the simulator) is available")
    with pytest.raises(crfrnn_np.BackendError, match="CUDA"):
        crfrnn_np.lattice.PermutohedralLattice(np.zeros((4, 2), np.float32), backend="cuda")


def test_cuda_lattice_on_gpu(rng):
    from crfrnn_np.lattice import cuda as lattice_cuda
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or not lattice_cuda.cuda_available():
        pytest.skip("no CUDA GPU")
    from crfrnn_np.lattice import PermutohedralLattice, spatial_features
    f = spatial_features(40, 50, 3.0)
    x = rng.random((4, 2000), dtype=np.float32)
    for reverse in (False, True):
        np.testing.assert_allclose(PermutohedralLattice(f, "cuda").filter(x, reverse),
                                   PermutohedralLattice(f, "cpu").filter(x, reverse), rtol=1e-5, atol=1e-6)
