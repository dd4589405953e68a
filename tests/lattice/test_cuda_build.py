"""The lattice index built on the device (lattice/cuda_build.py): under the simulator in a subprocess, every
array equal to the host build's (tests/lattice/cudasim_cuda_build_check.py)."""
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.cudasim
def test_device_build_equals_host_build_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, str(HERE / "cudasim_cuda_build_check.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cudasim cuda_build OK" in proc.stdout
