"""Every numba.cuda simulator check of the suite, run again on a real GPU when the machine has one.

The simulator runs one thread at a time, so it shows neither races between atomics nor what the CUDA compiler
does with a kernel; the PTX test (tests/crfrnn_np/test_cuda_kernel.py) covers the compiler, this covers the
rest. Each ``tests/*/cudasim_*.py`` script (except the PTX-under-simulator check, which is about the
simulator) runs in a subprocess without the simulator (``crfrnn_np.testing.run_on_gpu``): the layers and nets
against the CPU, the transfer and allocation counts, the lattice build against the host build, the CLI verbs.
Without a GPU each test skips, saying so: ``make test`` runs the same scripts under the simulator. On a lent
machine: ``make gpu-check``.
"""
import pathlib

import pytest

from crfrnn_np.backend import real_gpu_present
from crfrnn_np.testing import run_on_gpu

TESTS = pathlib.Path(__file__).resolve().parents[1]
#: The simulator checks; cudasim_launch_check.py checks the simulator's own signature wrapper.
SCRIPTS = sorted(p for p in TESTS.glob("*/cudasim_*.py") if p.name != "cudasim_launch_check.py")


def test_every_simulator_check_is_listed():
    """The glob finds the scripts the simulator tests run (so a renamed folder cannot empty this module)."""
    names = {p.name for p in SCRIPTS}
    assert {"cudasim_net.py", "cudasim_cuda_build_check.py", "cudasim_meanfield_cuda_check.py",
            "cudasim_segment_cli_check.py"} <= names and len(names) >= 12, names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: "%s/%s" % (p.parent.name, p.stem))
def test_simulator_check_on_a_real_gpu(script):
    if not real_gpu_present():
        pytest.skip("no CUDA GPU here; make test runs this check under the simulator")
    # every script ends by printing a line with "OK" (its own), after its assertions
    out = run_on_gpu([script], ok="OK", timeout=900)
    print(out[-2000:])
