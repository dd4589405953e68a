"""Fixtures of the device layer tests: ``cudasim_group`` runs one group of cudasim_dense_check.py under the
numba.cuda simulator in a subprocess (pytest imports test modules by path, so they share it from here)."""
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent


def run_group(group):
    """Run one group of cudasim_dense_check.py with NUMBA_ENABLE_CUDASIM=1; its stdout."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, str(HERE / "cudasim_dense_check.py"), group], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cudasim %s OK" % group in proc.stdout
    return proc.stdout


@pytest.fixture
def cudasim_group():
    """``cudasim_group("copy")`` -> the stdout of that group of cudasim_dense_check.py under the simulator."""
    return run_group
