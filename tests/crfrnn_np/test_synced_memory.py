"""crfrnn_np/synced_memory.py: Caffe's SyncedMemory rule on one blob under the numba.cuda simulator (reads copy
only when the other side is newer, a host write marks the host newer, buffers made once per shape), and the
host-only use of the CPU backend."""
import pathlib
import sys

import numpy as np
import pytest

from crfrnn_np.synced_memory import CPU, NONE, SyncedMemory

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cudasim_net import run_part  # noqa: E402


@pytest.mark.cudasim
def test_sync_rule_under_simulator():
    assert "synced memory OK" in run_part("synced")


def test_host_side_alone():
    memory = SyncedMemory((2, 3), np.dtype(np.float32))
    assert memory.head == NONE and not memory.allocated()
    host = memory.cpu()
    np.testing.assert_array_equal(host, 0)
    assert memory.head == CPU and memory.device is None and memory.mutable_cpu() is host
    array = np.ones((2, 3), np.float32)
    memory.set_cpu(array)
    assert memory.cpu() is array and memory.head == CPU
