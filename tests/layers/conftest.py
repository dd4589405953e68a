"""Fixtures of the device layer tests: ``cudasim_group`` runs one group of cudasim_dense_check.py under the
numba.cuda simulator in a subprocess (pytest imports test modules by path, so they share it from here)."""
import pathlib

import pytest

from crfrnn_np.testing import run_under_simulator

HERE = pathlib.Path(__file__).resolve().parent


def run_group(group):
    """Run one group of cudasim_dense_check.py with NUMBA_ENABLE_CUDASIM=1; its stdout."""
    return run_under_simulator([HERE / "cudasim_dense_check.py", group], ok="cudasim %s OK" % group)


@pytest.fixture
def cudasim_group():
    """``cudasim_group("copy")`` -> the stdout of that group of cudasim_dense_check.py under the simulator."""
    return run_group
