"""crfrnn_np.backend: float64 on a device without it and a net too large for the device are one-line errors,
raised before anything is allocated (made-up devices: no GPU here)."""
import numpy as np
import pytest

import crfrnn_np
from crfrnn_np import backend


def test_float64_on_a_device_without_it():
    old = ("Old GPU", (1, 2), 1 << 30, 1 << 30)
    with pytest.raises(crfrnn_np.BackendError, match=r"compute capability 1\.2.*no float64"):
        backend.check_cuda(np.float64, info=old)
    backend.check_cuda(np.float32, info=old)                   # float32 is fine there
    backend.check_cuda(np.float64, info=("H200", (9, 0), 1 << 30, 1 << 30))


def test_too_large_for_device_memory_is_checked_before_allocating():
    small = ("Small GPU", (8, 0), 10 ** 9, 2 * 10 ** 9)
    with pytest.raises(crfrnn_np.BackendError) as info:
        backend.check_device_memory(3 * 10 ** 9, "net 'big': blobs", info=small)
    msg = str(info.value)
    assert "\n" not in msg
    assert "3.00 GB" in msg and "1.00 GB free" in msg and "Small GPU" in msg and "net 'big'" in msg
    backend.check_device_memory(10 ** 9, "net 'fits': blobs", info=small)


def test_net_too_large_for_device_fails_at_construction(monkeypatch):
    """The Net checks its blobs against the device's free memory before a single allocation."""
    monkeypatch.setattr(backend, "cuda_available", lambda: True)
    monkeypatch.setattr(backend, "device_info", lambda: ("Tiny GPU", (8, 0), 4 * 10 ** 6, 8 * 10 ** 6))
    text = """name: "wide" layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 1000
              dim: 1000 } } } layer { name: "r" type: "ReLU" bottom: "x" top: "y" }"""
    with pytest.raises(crfrnn_np.BackendError, match=r"net 'wide'.*largest blob '(x|y)' 1 3 1000 1000.*Tiny GPU"):
        crfrnn_np.Net(crfrnn_np.proto.parse(text), backend="cuda")
