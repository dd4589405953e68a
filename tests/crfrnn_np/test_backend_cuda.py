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


def test_lattices_count_in_the_device_memory_check(monkeypatch):
    """The lattices of a CRF net are part of the check: a filter net whose blobs fit but whose bilateral
    lattice (N (d+1)-row buffers, sized before the vertex count is known) does not is refused, and the
    2T filters of a mean-field net sharing two lattices count them once."""
    from crfrnn_np.lattice.cuda import device_bytes
    monkeypatch.setattr(backend, "cuda_available", lambda: True)
    free = 120 * 10 ** 6
    monkeypatch.setattr(backend, "device_info", lambda: ("Tiny GPU", (8, 0), free, 2 * free))
    shape = "dim: 1 dim: 21 dim: 400 dim: 400"
    text = """name: "filter" layer { name: "in" type: "Input" top: "q" top: "image" input_param {
              shape { %s } shape { dim: 1 dim: 3 dim: 400 dim: 400 } } }
              layer { name: "b" type: "PermutohedralFilter" bottom: "q" bottom: "image" top: "m"
              permutohedral_param { kernel: BILATERAL theta_alpha: 80 theta_beta: 13 } }""" % shape
    blobs = (2 * 21 + 3) * 400 * 400 * 4
    lattice = device_bytes(400 * 400, 5, 21, 4)
    assert blobs < free < blobs + lattice            # the blobs alone would pass
    with pytest.raises(crfrnn_np.BackendError, match=r"net 'filter': blobs, parameters and lattices .*Tiny GPU"):
        crfrnn_np.Net(crfrnn_np.proto.parse(text), backend="cuda")
    # a second filter on the same lattice adds its top blob only; on another lattice, that lattice too
    asked = []
    monkeypatch.setattr(backend, "check_device_memory", lambda need, what, info=None: asked.append(need))
    second = """ layer { name: "b2" type: "PermutohedralFilter" bottom: "m" bottom: "image" top: "m2"
              permutohedral_param { kernel: BILATERAL theta_alpha: 80 theta_beta: %s } }"""
    for text in (text, text + second % 13, text + second % 14):
        crfrnn_np.Net(crfrnn_np.proto.parse(text), backend="cuda")
    assert asked[0] == blobs + lattice
    assert 21 * 400 * 400 * 4 <= asked[1] - asked[0] < lattice / 2      # m2 (and the image's Split tops)
    assert asked[2] - asked[1] == lattice


def test_device_bytes_bounds_what_a_lattice_holds():
    """device_bytes against the arrays a lattice really makes (sizes only: counted from shapes and dtypes)."""
    from crfrnn_np.lattice.cuda import device_bytes
    from crfrnn_np.lattice.hash_table import table_bits
    n, d, c, itemsize = 1000, 5, 21, 4
    e = n * (d + 1)
    kept = e * 4 + e * 4 + (d + 1) * e * 2 * 4 + (e + 1) * 8 + e * 4 + e * 4 + 8
    buffers = 2 * (e + 1) * c * itemsize + c * n * itemsize
    table = (1 << table_bits(e)) * (8 + 4)
    assert device_bytes(n, d, c, itemsize) >= kept + buffers + table
    assert device_bytes(n, d, c, itemsize) < 2 * (kept + buffers + table + e * 56)
