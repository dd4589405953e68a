"""Under the numba.cuda simulator: ``crfrnn_np.cuda_reduce.block_reduce`` called from a kernel (run by
test_cuda_reduce.py in a subprocess with NUMBA_ENABLE_CUDASIM=1, set before numba is imported).

Prints one line per case; the test module asserts them."""
import os
import sys

import numpy as np
from numba import cuda

from crfrnn_np.config import THREADS_PER_BLOCK as B
from crfrnn_np.cuda_kernel import F32, I32, I64, gpu_kernel, recording, undeclared
from crfrnn_np.cuda_reduce import MIN, SUM, block_reduce


# int32 is declared for this test kernel but not for block_reduce: its call must show up as undeclared
@gpu_kernel(lambda f: [(f[::1], I64, f[::1]), (I64[::1], I64, I64[::1]), (I32[::1], I64, I32[::1]),
                       (F32[::1], I64, F32[::1])])
def reduce_kernel(values, op, out):
    """One block of B threads: thread t writes values[t], all reduce, each thread copies buf[0] to out[t]."""
    buf = cuda.shared.array(B, dtype=values.dtype)
    tid = cuda.threadIdx.x
    buf[tid] = values[tid]
    block_reduce(buf, op)
    out[tid] = buf[0]


def tree(values, op):
    """The pairwise tree of the module docstring in NumPy: halves added (or compared) until one is left."""
    v = values.copy()
    while v.size > 1:
        half = v.size // 2
        v = op(v[:half], v[half:])
    return v[0]


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    # device-function calls are recorded by the simulator's wrapper only (on a GPU they are compiled inline)
    simulator = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    if simulator:
        # the simulator's shared arrays are handed out without a race (crfrnn_np.cuda_kernel), and still one
        # per calling line, reused by every later call from there
        from numba.cuda.simulator import kernelapi
        assert kernelapi.FakeCUDAShared.array.without_race
        shared = kernelapi.FakeCUDAShared(0)
        first, second = (shared.array(4, np.float32) for _ in range(2))
        other = shared.array(4, np.float32)
        assert first is second and other is not first
    def run(values, op):
        out = cuda.device_array_like(values)
        reduce_kernel[1, B](cuda.to_device(values), op, out)
        out = out.copy_to_host()
        assert np.all(out == out[0]), "threads read different results: %s" % np.unique(out)
        return out[0]

    rng = np.random.default_rng(4)
    with recording() as calls:
        for dtype in (np.float32, np.float64):
            values = rng.standard_normal(B).astype(dtype) * 1000
            got = run(values, SUM)
            # bitwise the NumPy tree; near the exact sum
            assert got == tree(values, np.add), (got, tree(values, np.add))
            assert abs(float(got) - np.sum(values.astype(np.float64))) <= 1e-4 * np.abs(values).sum()
            print("sum %s: tree of %d partials" % (np.dtype(dtype).name, B))
        values = rng.integers(1, 10**12, B)          # positive: a partial lost or added twice changes the sum
        assert run(values, SUM) == int(values.sum())
        for where in (0, B - 1, int(rng.integers(B))):
            values = rng.integers(-10**12, 10**12, B)
            values[where] = -10**15
            assert run(values, MIN) == -10**15
        values = rng.integers(-10**12, 10**12, B)
        assert run(values, MIN) == values.min()
        print("int64: sum and min")
        # every declared call type is seen, and an undeclared one is caught
        assert not undeclared(calls), undeclared(calls)
        assert run(np.arange(B, dtype=np.int32), SUM) == B * (B - 1) // 2
    bad = undeclared(calls)
    assert not simulator or bad == ["crfrnn_np.cuda_reduce.block_reduce('array(int32, 1d, C)', 'int64')"], bad
    print("calls recorded:", sorted(str(sig[0]) for name, sig in calls if name.endswith("block_reduce")))
    print("cudasim reduce OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
