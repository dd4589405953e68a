"""Under the numba.cuda simulator: every kernel launch the cuda backend makes has a declared signature (run by
test_cuda_kernel.py in a subprocess with NUMBA_ENABLE_CUDASIM=1, set before numba is imported).

The PTX tests compile the declared signatures; this closes the loop, so that what is compiled is what runs."""
import os
import sys

import numpy as np


def main():
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
    from crfrnn_np.cuda_kernel import KERNELS, recording
    from crfrnn_np.lattice import PermutohedralLattice

    rng = np.random.default_rng(5)
    with recording() as launches:
        for d, dtype in ((2, np.float32), (5, np.float64)):
            lat = PermutohedralLattice(rng.normal(size=(12, d)).astype(np.float32), backend="cuda")
            x = rng.normal(size=(2, 12)).astype(dtype)
            lat.filter(x)
            lat.filter(x, reverse=True)
        if len(sys.argv) > 1 and sys.argv[1] == "--net":
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from cudasim_net import NET, STEP_NET, run_small_net
            for text in (NET, STEP_NET):
                run_small_net("float32", text)
                run_small_net("float64", text)
    undeclared = sorted("%s%s" % (name, tuple(str(t) for t in sig)) for name, sig in launches
                        if sig not in KERNELS[name].signatures())
    assert not undeclared, "launches with undeclared signatures:\n" + "\n".join(undeclared)
    names = sorted({name for name, _ in launches})
    print("launched:", " ".join(n.rsplit(".", 1)[-1] for n in names))
    print("cudasim launches OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
