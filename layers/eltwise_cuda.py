"""Device kernels of Eltwise PROD and MAX (SUM is cuda_ops.scale/axpby): the element-wise product and quotient
(PROD's two gradient forms), and the running maximum with the index of the winning bottom (MAX's mask). One
thread per element of the flattened blobs; ``out`` may be one of the inputs."""
from numba import cuda

from crfrnn_np.cuda_kernel import I32, I64, gpu_kernel, grid_1d
from crfrnn_np.cuda_ops import flat


@gpu_kernel(lambda f: [(f[::1], f[::1], f[::1])])
def multiply_kernel(a, b, out):
    """Thread i: ``out[i] = a[i] b[i]`` (``out`` may be ``a`` or ``b``)."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = a[i] * b[i]


@gpu_kernel(lambda f: [(f[::1], f[::1], f[::1])])
def divide_kernel(a, b, out):
    """Thread i: ``out[i] = a[i] / b[i]``."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = a[i] / b[i]


@gpu_kernel(lambda f: [(f[::1], f[::1], f[::1], I32[::1])])
def eltwise_max_first_kernel(x0, x1, y, mask):
    """Thread i: the larger of two bottoms (ties to the second, as the CPU) and its index."""
    i = cuda.grid(1)
    if i < y.shape[0]:
        if x0[i] > x1[i]:
            y[i] = x0[i]
            mask[i] = 0
        else:
            y[i] = x1[i]
            mask[i] = 1


@gpu_kernel(lambda f: [(f[::1], I64, f[::1], I32[::1])])
def eltwise_max_next_kernel(x, k, y, mask):
    """Thread i: bottom k replaces the running maximum where it is strictly larger."""
    i = cuda.grid(1)
    if i < y.shape[0] and x[i] > y[i]:
        y[i] = x[i]
        mask[i] = k


@gpu_kernel(lambda f: [(f[::1], I32[::1], I64, f[::1])])
def eltwise_max_backward_kernel(dy, mask, k, dx):
    """Thread i: ``dx = dy`` where bottom k won, else 0."""
    i = cuda.grid(1)
    if i < dx.shape[0]:
        if mask[i] == k:
            dx[i] = dy[i]
        else:
            dx[i] = 0


def multiply(a, b, out):
    """``out = a * b`` element-wise (device arrays of one size, any shape)."""
    if out.size:
        multiply_kernel[grid_1d(out.size)](flat(a), flat(b), flat(out))


def divide(a, b, out):
    """``out = a / b`` element-wise."""
    if out.size:
        divide_kernel[grid_1d(out.size)](flat(a), flat(b), flat(out))


def eltwise_max(xs, y, mask):
    """``y = max_k xs[k]`` element-wise with the winning index in ``mask`` (int32, y's size)."""
    if y.size:
        grid = grid_1d(y.size)
        eltwise_max_first_kernel[grid](flat(xs[0]), flat(xs[1]), flat(y), mask)
        for k, x in enumerate(xs[2:], start=2):
            eltwise_max_next_kernel[grid](flat(x), k, flat(y), mask)


def eltwise_max_backward(dy, mask, k, dx):
    """``dx = dy`` where bottom ``k`` holds the maximum (``mask``), else 0."""
    if dx.size:
        eltwise_max_backward_kernel[grid_1d(dx.size)](flat(dy), mask, k, flat(dx))
