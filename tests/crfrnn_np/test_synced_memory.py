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


def test_stamp_changes_with_every_write_and_only_then():
    """What the device lattice cache relies on: reads keep ``stamp``, every hand-out for writing changes it,
    and the memories a blob shares (a Reshape top's) carry their base's serial and stamp."""
    from crfrnn_np.blob import Blob
    from crfrnn_np.synced_memory import ReshapedMemory
    memory = SyncedMemory((2, 3), np.dtype(np.float32))
    other = SyncedMemory((2, 3), np.dtype(np.float32))
    assert memory.serial != other.serial
    stamps = [memory.stamp]
    memory.cpu()
    memory.cpu()
    assert memory.stamp == stamps[-1]
    memory.mutable_cpu()
    stamps.append(memory.stamp)
    memory.set_cpu(np.zeros((2, 3), np.float32))
    stamps.append(memory.stamp)
    memory.mutable_cpu()
    stamps.append(memory.stamp)
    assert len(set(stamps)) == 4 and memory.serial == stamps[0]
    view = ReshapedMemory(memory, (6,))
    assert (view.serial, view.stamp) == (memory.serial, memory.stamp)
    view.mutable_cpu()
    assert view.stamp == memory.stamp != stamps[-1]
    blob = Blob((2, 3), np.float32, "image")
    version = blob.data_version()
    blob.cpu_data()
    assert blob.data_version() == version
    blob.data[0, 0] = 1                     # the host view handed out for writing
    assert blob.data_version() != version and blob.data_version()[0] == version[0]
    blob.reshape((3, 3))                    # new memory, new serial
    assert blob.data_version()[0] != version[0]


def test_blob_host_data_current():
    from crfrnn_np.blob import Blob
    blob = Blob((2,), np.float32, "labels")
    assert not blob.host_data_current()          # nothing written anywhere yet
    blob.data[0] = 3
    assert blob.host_data_current()
