"""Device GEMM of InnerProduct and the bias sums shared with the convolutions.

``gemm_kernel`` is the textbook tiled product: a block of T x T threads (T = :data:`~crfrnn_np.config.GEMM_TILE`)
computes a T x T tile of ``C``; for every step of T along the inner dimension each thread loads one element of
``op(A)`` and one of ``op(B)`` into shared memory, the block waits, and each thread adds the T products of its
row and column. Out-of-range elements load as zero, so any M, N, K works. ``op(X)`` is X or its transpose
(``trans_*`` flags, read in place: no transposed copy is made)::

    C[M, N]  = op(A)[M, K] @ op(B)[K, N]          (accumulate = 0)
    C[M, N] += op(A)[M, K] @ op(B)[K, N]          (accumulate = 1: Caffe's parameter-diff rule)

``channel_sum_kernel`` adds ``sum over (outer, inner) of dy[outer, c, inner]`` to ``db[c]``: one block per
channel, a tree in shared memory (``crfrnn_np.cuda_reduce.block_reduce``; the bias gradients of InnerProduct,
Convolution and Deconvolution).
"""
from numba import cuda

from crfrnn_np.config import GEMM_TILE as T
from crfrnn_np.config import THREADS_PER_BLOCK
from crfrnn_np.cuda_kernel import I64, gpu_kernel, grid_1d
from crfrnn_np.cuda_reduce import SUM, block_reduce


@gpu_kernel(lambda f: [(f[:, ::1], f[:, ::1], I64, I64, I64, f, f[:, ::1])])
def gemm_kernel(a, b, trans_a, trans_b, accumulate, zero, c):
    """Block (bx, by), thread (tx, ty): ``C[by*T + ty, bx*T + tx]`` (see the module docstring)."""
    tile_a = cuda.shared.array((T, T), dtype=c.dtype)
    tile_b = cuda.shared.array((T, T), dtype=c.dtype)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row = cuda.blockIdx.y * T + ty
    col = cuda.blockIdx.x * T + tx
    m, n = c.shape
    k_total = a.shape[0] if trans_a else a.shape[1]
    acc = zero
    for k0 in range(0, k_total, T):
        k = k0 + tx                                    # op(A)[row, k] into tile_a[ty, tx]
        v = zero
        if row < m and k < k_total:
            v = a[k, row] if trans_a else a[row, k]
        tile_a[ty, tx] = v
        k = k0 + ty                                    # op(B)[k, col] into tile_b[ty, tx]
        v = zero
        if col < n and k < k_total:
            v = b[col, k] if trans_b else b[k, col]
        tile_b[ty, tx] = v
        cuda.syncthreads()
        for j in range(T):
            acc += tile_a[ty, j] * tile_b[j, tx]
        cuda.syncthreads()
    if row < m and col < n:
        if accumulate:
            c[row, col] += acc
        else:
            c[row, col] = acc


@gpu_kernel(lambda f: [(f[::1], f[:, ::1])])
def add_bias_kernel(bias, y):
    """Thread t over (m, n): ``y[m, n] += bias[n]``."""
    t = cuda.grid(1)
    m, n = y.shape
    if t < m * n:
        y[t // n, t % n] += bias[t % n]


@gpu_kernel(lambda f: [(f[:, :, ::1], f, f[::1])])
def channel_sum_kernel(dy, zero, db):
    """Block c: ``db[c] += sum_{o, i} dy[o, c, i]`` (threads stride over (o, i), then a tree in shared memory)."""
    sums = cuda.shared.array(THREADS_PER_BLOCK, dtype=db.dtype)
    tid = cuda.threadIdx.x
    c = cuda.blockIdx.x
    outer, channels, inner = dy.shape
    acc = zero
    for t in range(tid, outer * inner, THREADS_PER_BLOCK):
        acc += dy[t // inner, c, t % inner]
    sums[tid] = acc
    block_reduce(sums, SUM)
    if tid == 0:
        db[c] += sums[0]


def gemm(a, b, c, trans_a=False, trans_b=False, accumulate=False):
    """``c (=|+=) op(a) @ op(b)`` for 2-D C-contiguous device arrays."""
    m, n = c.shape
    if m and n:
        grid = ((n + T - 1) // T, (m + T - 1) // T)
        gemm_kernel[grid, (T, T)](a, b, int(trans_a), int(trans_b), int(accumulate), c.dtype.type(0), c)


def add_bias(bias, y):
    """``y[m, :] += bias`` for every row of the 2-D device array ``y``."""
    if y.size:
        add_bias_kernel[grid_1d(y.size)](bias, y)


def channel_sum(dy, db):
    """``db += dy.sum(axis=(0, 2))`` for a device array ``dy`` (outer, C, inner)."""
    if dy.shape[1]:
        channel_sum_kernel[dy.shape[1], THREADS_PER_BLOCK](dy, db.dtype.type(0), db)


__all__ = ["gemm", "add_bias", "channel_sum"]
