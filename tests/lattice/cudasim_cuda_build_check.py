"""The device lattice build (lattice/cuda_build.py) under the numba.cuda simulator, array for array against the
host build (run by test_cuda_build.py in a subprocess with NUMBA_ENABLE_CUDASIM=1, which must be set before
numba is imported)."""
import os
import sys
import warnings

import numpy as np


def _host_and_device(features):
    """``(host dict of build_from_simplices, CudaLattice built on the device)`` of the same simplices."""
    from crfrnn_np.lattice.cpu import build_from_simplices
    from crfrnn_np.lattice.cuda import CudaLattice
    from crfrnn_np.lattice import cuda as lattice_cuda
    from numba import cuda
    dev = CudaLattice(features)
    # the host build from the device's own simplices (the embed kernel is shared by both paths)
    n, d = features.shape
    rem0 = cuda.device_array((n, d + 1), np.int32)
    rank = cuda.device_array((n, d + 1), np.int32)
    weights = cuda.device_array((n, d + 1), np.float32)
    lattice_cuda._embed_kernel[lattice_cuda._grid(n)](cuda.to_device(features.reshape(-1)), d,
                                                      np.float32(1.0 / (d + 1)), rem0, rank, weights)
    host = build_from_simplices(rem0.copy_to_host(), rank.copy_to_host(), weights.copy_to_host())
    return host, dev


def check_same_arrays(features, label):
    """Every array of the device build equals the host build's, exactly (dtype, shape, values)."""
    host, dev = _host_and_device(features)
    assert dev.built_on_device, label
    assert dev.num_vertices == host["num_vertices"], (label, dev.num_vertices, host["num_vertices"])
    for name, array in dev.device_arrays.items():
        got = array.copy_to_host()
        assert got.dtype == host[name].dtype and got.shape == host[name].shape, (label, name, got.dtype,
                                                                                 got.shape)
        np.testing.assert_array_equal(got, host[name], err_msg="%s: %s" % (label, name))
    return host


def check_scan():
    """exclusive_scan at one level and at three (chunks of 2), against np.cumsum."""
    from crfrnn_np.lattice.cuda_build import exclusive_scan
    from numba import cuda
    values = np.random.default_rng(5).integers(0, 7, size=19).astype(np.int64)
    want = np.concatenate(([0], np.cumsum(values)))
    for chunk in (64, 2, 3):
        out = exclusive_scan(cuda.to_device(values), cuda.device_array(20, np.int64), chunk)
        np.testing.assert_array_equal(out.copy_to_host(), want)


def check_order():
    """_order_kernel sorts shuffled gather lists (two vertices holding all 9 pixels) and fetches the weights."""
    from crfrnn_np.cuda_kernel import grid_1d
    from crfrnn_np.lattice.cuda_build import _order_kernel
    from numba import cuda
    rng = np.random.default_rng(8)
    vertex = np.tile(np.asarray([[1, 0]], np.int32), (9, 1))
    weights = rng.random((9, 2), dtype=np.float32)
    pixel = np.concatenate((rng.permutation(9), rng.permutation(9))).astype(np.int32)
    d_pixel = cuda.to_device(pixel)
    d_weight = cuda.device_array(18, np.float32)
    _order_kernel[grid_1d(2)](cuda.to_device(np.asarray([0, 9, 18], np.int64)), d_pixel, cuda.to_device(vertex),
                              cuda.to_device(weights), d_weight)
    np.testing.assert_array_equal(d_pixel.copy_to_host(), np.tile(np.arange(9, dtype=np.int32), 2))
    np.testing.assert_array_equal(d_weight.copy_to_host(), np.concatenate((weights[:, 1], weights[:, 0])))


def check_all():
    """The scan, the gather-list sort, then every array of device builds of a few lattices against the host's."""
    from crfrnn_np.lattice import bilateral_features, spatial_features
    from crfrnn_np.lattice.cpu import build
    from crfrnn_np.lattice.cuda import CudaLattice
    check_scan()
    check_order()
    rng = np.random.default_rng(1702)
    image = rng.integers(0, 256, size=(3, 8, 8)).astype(np.float32)
    host = check_same_arrays(bilateral_features(image, 3.0, 20.0), "bilateral 8x8 d=5")
    assert host["key_words"] == 1 and host["num_vertices"] > 64
    check_same_arrays(spatial_features(8, 8, 3.0), "spatial 8x8 d=2")
    # every point on the same position: one simplex shared by all, long gather lists to sort
    check_same_arrays(np.zeros((40, 3), np.float32) + np.float32(0.3), "40 equal points d=3")
    check_same_arrays((rng.normal(size=(30, 5)) * 2).astype(np.float32), "random d=5")
    # keys wider than one word: the host build, copied to the device
    wide = (rng.normal(size=(6, 16)) * 1e4).astype(np.float32)
    assert build(wide)["key_words"] > 1
    dev = CudaLattice(wide)
    assert not dev.built_on_device and dev.num_vertices == build(wide)["num_vertices"]



def main():
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
    # the Fibonacci hash wraps around 2^64 on purpose; NumPy scalars (the simulator's) warn about it
    warnings.filterwarnings("ignore", "overflow encountered in scalar multiply", RuntimeWarning)
    from crfrnn_np.cuda_kernel import recording, undeclared
    with recording() as launches:
        check_all()
    bad = undeclared(launches)
    assert not bad, "launches with undeclared signatures:\n" + "\n".join(bad)
    print("cudasim cuda_build OK")
    return 0



if __name__ == "__main__":
    sys.exit(main())
