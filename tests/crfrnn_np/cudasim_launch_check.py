"""Under the numba.cuda simulator: every kernel launch of the lattice has a declared signature (run by
test_cuda_kernel.py in a subprocess with NUMBA_ENABLE_CUDASIM=1, set before numba is imported; the layers'
kernels are checked the same way by cudasim_net.py).

The PTX tests compile the declared signatures; this closes the loop, so that what is compiled is what runs."""
import os
import sys

import numpy as np


def main():
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
    from crfrnn_np.cuda_kernel import recording, undeclared
    from crfrnn_np.lattice import PermutohedralLattice

    rng = np.random.default_rng(5)
    with recording() as launches:
        for d, dtype in ((2, np.float32), (5, np.float64)):
            lat = PermutohedralLattice(rng.normal(size=(12, d)).astype(np.float32), backend="cuda")
            x = rng.normal(size=(2, 12)).astype(dtype)
            lat.filter(x)
            lat.filter(x, reverse=True)
    bad = undeclared(launches)
    assert not bad, "launches with undeclared signatures:\n" + "\n".join(bad)
    names = sorted({name for name, _ in launches})
    print("launched:", " ".join(n.rsplit(".", 1)[-1] for n in names))
    print("cudasim launches OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
