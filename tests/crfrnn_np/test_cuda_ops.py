"""The shared device helpers (crfrnn_np/cuda_ops.py) under the numba.cuda simulator, in a subprocess with
NUMBA_ENABLE_CUDASIM=1: fill, copy, scale and axpby against NumPy in float32 and float64 (axpby rounded as
``x * alpha + y * beta``, in place on either operand), on 2-D arrays through their flat views, 70 elements so
that a launch has more than one 32-thread warp and a partial last block; empty arrays launch nothing."""
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import numpy as np
    from numba import cuda
    from crfrnn_np import cuda_ops
    from crfrnn_np.cuda_kernel import recording, undeclared
    rng = np.random.default_rng(5)
    with recording() as launches:
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal((7, 10)).astype(dtype)
            y = rng.standard_normal((7, 10)).astype(dtype)
            dx, dy = cuda.to_device(x), cuda.to_device(y)
            out = cuda_ops.empty((7, 10), dtype)
            assert out.shape == (7, 10) and out.dtype == dtype and cuda_ops.flat(out).shape == (70,)
            cuda_ops.fill(out, 2.5)
            assert (out.copy_to_host() == dtype(2.5)).all()
            cuda_ops.copy(dx, out)
            assert (out.copy_to_host() == x).all()
            cuda_ops.scale(-0.3, dx, out)
            assert (out.copy_to_host() == x * dtype(-0.3)).all()
            cuda_ops.axpby(0.7, dx, -1.9, dy, dy)
            assert (dy.copy_to_host() == x * dtype(0.7) + y * dtype(-1.9)).all()
            cuda_ops.fill(cuda_ops.empty((0, 3), dtype), 1)
            print("cuda_ops %s OK" % np.dtype(dtype).name)
    assert not undeclared(launches), undeclared(launches)
    assert {n.rsplit(".", 1)[1] for n, _ in launches} == {"_fill_kernel", "_copy_kernel", "_scale_kernel",
                                                         "_axpby_kernel"}
""")


@pytest.mark.cudasim
def test_device_helpers_equal_numpy_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cuda_ops float32 OK" in proc.stdout and "cuda_ops float64 OK" in proc.stdout
