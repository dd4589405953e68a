"""Device kernels of the element-wise layers (ReLU, Sigmoid, TanH): one thread per element of the flattened
blob, the same formulas as the layers' CPU code (see relu.py, sigmoid.py, tanh.py). In place is safe: each
thread reads its element before writing it.

Constants (0.5, 1) are passed as arguments of the values' type: a literal would be an int64 or float64 in
numba, and float32 arithmetic with it would be promoted to float64."""
import math

from numba import cuda

from crfrnn_np.cuda_kernel import gpu_kernel, grid_1d
from crfrnn_np.cuda_ops import flat

_WITH_CONSTANT = lambda f: [(f[::1], f, f[::1])]            # noqa: E731  (x, constant, y)
_BACKWARD = lambda f: [(f[::1], f[::1], f, f[::1])]          # noqa: E731  (y, dy, constant, dx)


@gpu_kernel(_WITH_CONSTANT)
def relu_forward_kernel(x, slope, y):
    """``y = x if x > 0 else slope * x``."""
    i = cuda.grid(1)
    if i < y.shape[0]:
        v = x[i]
        y[i] = v if v > 0 else v * slope


@gpu_kernel(_BACKWARD)
def relu_backward_kernel(x, dy, slope, dx):
    """``dx = dy if x > 0 else slope * dy`` (x may be the output: same sign for slope >= 0)."""
    i = cuda.grid(1)
    if i < dx.shape[0]:
        dx[i] = dy[i] if x[i] > 0 else dy[i] * slope


@gpu_kernel(_WITH_CONSTANT)
def sigmoid_forward_kernel(x, half, y):
    """``y = 0.5 tanh(0.5 x) + 0.5`` (never overflows)."""
    i = cuda.grid(1)
    if i < y.shape[0]:
        y[i] = half * math.tanh(half * x[i]) + half


@gpu_kernel(_BACKWARD)
def sigmoid_backward_kernel(y, dy, one, dx):
    """``dx = dy y (1 - y)``."""
    i = cuda.grid(1)
    if i < dx.shape[0]:
        v = y[i]
        dx[i] = dy[i] * v * (one - v)


@gpu_kernel(lambda f: [(f[::1], f[::1])])
def tanh_forward_kernel(x, y):
    """``y = tanh x``."""
    i = cuda.grid(1)
    if i < y.shape[0]:
        y[i] = math.tanh(x[i])


@gpu_kernel(_BACKWARD)
def tanh_backward_kernel(y, dy, one, dx):
    """``dx = dy (1 - y^2)``."""
    i = cuda.grid(1)
    if i < dx.shape[0]:
        v = y[i]
        dx[i] = dy[i] * (one - v * v)


def launch(kernel, *arrays_and_scalars):
    """Launch an element-wise kernel over the last array argument (the output), arrays flattened."""
    args = [flat(a) if hasattr(a, "copy_to_host") else a for a in arrays_and_scalars]
    n = args[-1].shape[0]
    if n:
        kernel[grid_1d(n)](*args)
