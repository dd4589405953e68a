"""The device lattice build (lattice/cuda_build.py) under the numba.cuda simulator, array for array against the
host build (run by test_cuda_build.py in a subprocess with NUMBA_ENABLE_CUDASIM=1, which must be set before
numba is imported)."""
import os
import sys

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
    """Every array of the device build equals the host build's, exactly (dtype, and values in the first M
    rows of the per-vertex arrays, which the device makes with room for N (d+1) vertices)."""
    host, dev = _host_and_device(features)
    assert dev.built_on_device, label
    m = host["num_vertices"]
    assert dev.num_vertices == m, (label, dev.num_vertices, m)
    assert dev.capacity == features.shape[0] * (features.shape[1] + 1), label
    for name, array in dev.device_arrays.items():
        got = array.copy_to_host()
        if name == "count":
            assert got.tolist() == [m], (label, got)
            continue
        want = host[name]
        if name == "neighbours":
            assert got.shape == (want.shape[0], dev.capacity, 2), (label, got.shape)
            got = got[:, :m]
        elif name == "splat_offsets":
            assert got.shape == (dev.capacity + 1,) and np.all(got[m:] == want[m]), (label, name)
            got = got[:m + 1]
        assert got.dtype == want.dtype and got.shape == want.shape, (label, name, got.dtype, got.shape)
        np.testing.assert_array_equal(got, want, err_msg="%s: %s" % (label, name))
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
    # keys wider than one int64 word on the host: the device build compares coordinates, any width works
    wide = (rng.normal(size=(6, 16)) * 1e4).astype(np.float32)
    assert build(wide)["key_words"] > 1
    check_same_arrays(wide, "wide keys d=16")
    check_device_features(rng)


def check_device_features(rng):
    """Features made on the device equal the host's bit for bit, and a lattice built from them equals the one
    built from the host's features; building moves nothing across."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crfrnn_np"))
    from cudasim_net import counting_transfers
    from crfrnn_np.lattice import PermutohedralLattice, bilateral_features, spatial_features
    from crfrnn_np.cuda_ops import fill
    from crfrnn_np.lattice.cuda import bilateral_features_device, spatial_features_device
    from numba import cuda
    for dtype in (np.float32, np.float64):
        # values with many digits (float64 ones are rounded to float32 first, as on the host)
        image = (rng.uniform(-130, 130, size=(4, 7, 9)) * np.pi).astype(dtype)
        device_image = cuda.to_device(image)
        with counting_transfers() as counts:
            feats = bilateral_features_device(device_image, 3.3, 17.0)
            spatial = spatial_features_device(7, 9, 2.7)
            lattice = PermutohedralLattice.from_device_features(feats, 5)
            ones = cuda.device_array((1, 63), np.float32)
            fill(ones, 1)
            lattice._impl.filter_device(ones)                # a filter call moves nothing either
        assert counts == {"to_device": 0, "to_host": 0}, counts
        np.testing.assert_array_equal(feats.copy_to_host().reshape(63, 5), bilateral_features(image, 3.3, 17.0))
        np.testing.assert_array_equal(spatial.copy_to_host().reshape(63, 2), spatial_features(7, 9, 2.7))
        host_built = PermutohedralLattice(bilateral_features(image, 3.3, 17.0), backend="cuda")
        values = rng.standard_normal((3, 63)).astype(np.float32)
        np.testing.assert_array_equal(lattice._impl.filter(values), host_built._impl.filter(values))
        np.testing.assert_array_equal(lattice._impl.filter(values, True), host_built._impl.filter(values, True))
    # a non-finite image value: NaN at its pixel, no failure
    image = rng.uniform(-100, 100, size=(3, 4, 4)).astype(np.float32)
    image[1, 2, 3] = np.nan
    lattice = PermutohedralLattice.from_device_features(bilateral_features_device(cuda.to_device(image), 3.0,
                                                                                  20.0), 5)
    out = lattice._impl.filter(np.ones((1, 16), np.float32))
    assert np.isnan(out[0, 2 * 4 + 3]) and np.isfinite(out).sum() < 16



def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np.cuda_kernel import recording
    from crfrnn_np.testing import assert_declared
    with recording() as launches:
        check_all()
    assert_declared(launches)
    print("cudasim cuda_build OK")
    return 0



if __name__ == "__main__":
    sys.exit(main())
