"""The CUDA lattice under the numba.cuda simulator, against the CPU lattice (run by test_lattice_cuda.py in
a subprocess with NUMBA_ENABLE_CUDASIM=1, which must be set before numba is imported)."""
import os
import sys

import numpy as np


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np.lattice import PermutohedralLattice
    from numba import cuda

    rng = np.random.default_rng(1701)
    n = 16
    for d, dtype in ((2, np.float64), (5, np.float32)):
        f = (rng.normal(size=(n, d)) * 1.5).astype(np.float32)
        ref = PermutohedralLattice(f, backend="cpu")
        dev = PermutohedralLattice(f, backend="cuda")
        assert dev.num_vertices == ref.num_vertices
        x = rng.normal(size=(2, n)).astype(dtype)
        y = rng.normal(size=(2, n)).astype(dtype)
        kx = dev.filter(x)
        kty = dev.filter(y, reverse=True)
        assert kx.dtype == dtype
        np.testing.assert_array_equal(kx, ref.filter(x))
        np.testing.assert_array_equal(kty, ref.filter(y, reverse=True))
        lhs = np.sum(kx.astype(np.float64) * y)
        rhs = np.sum(x.astype(np.float64) * kty)
        assert abs(lhs - rhs) <= (1e-12 if dtype == np.float64 else 1e-5) * (abs(lhs) + 1)
        # device-resident path: values already on the device, result stays there
        out = dev._impl.filter_device(cuda.to_device(x))
        np.testing.assert_array_equal(out.copy_to_host(), kx)
    print("cudasim lattice OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
