"""The block reduction of the device code, written once: a tree in shared memory.

Every thread of a 1-D block first writes its partial result into ``buf[threadIdx.x]`` of a shared array ``buf``
with one element per thread, then all of them call :func:`block_reduce`::

    step = B/2, B/4, ..., 1:   buf[t] = op(buf[t], buf[t + step])   for t < step   (then the block waits)

after which ``buf[0]`` holds the sum (``op`` :data:`SUM`) or the minimum (:data:`MIN`) of the B partials and every
thread may read it. B is ``buf.shape[0]`` and must be a power of two (the kernels use
:data:`~crfrnn_np.config.THREADS_PER_BLOCK`); the block must have exactly B threads, all of which call it (each
step is followed by ``syncthreads``).

Callers: the bias gradients (``layers/gemm_cuda.py``'s ``channel_sum_kernel``), the gradient-clipping norm
(``update_rules_cuda.py``) and SoftmaxWithLoss (``layers/loss_cuda.py``: a sum of logs, a count and the first bad
position, three reductions).
"""
from numba import cuda

from .cuda_kernel import F64, I64, gpu_device

__all__ = ["block_reduce", "SUM", "MIN"]

#: ``op`` of :func:`block_reduce`.
SUM, MIN = 0, 1


@gpu_device(lambda f: [(f[::1], I64), (F64[::1], I64), (I64[::1], I64)])
def block_reduce(buf, op):
    """``buf[0] = sum(buf)`` (op 0) or ``min(buf)`` (op 1) over one block (see the module docstring).

    Parameters
    ----------
    buf : shared array, shape (B,)
        One partial result per thread of the block, written before the call; overwritten.
    op : int
        :data:`SUM` or :data:`MIN`.
    """
    tid = cuda.threadIdx.x
    cuda.syncthreads()                  # every partial is written
    step = buf.shape[0] // 2
    while step > 0:
        if tid < step:
            if op == SUM:
                buf[tid] += buf[tid + step]
            else:
                buf[tid] = min(buf[tid], buf[tid + step])
        cuda.syncthreads()
        step //= 2
