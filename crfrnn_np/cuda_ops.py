"""Device-side helpers of the ``cuda`` backend: allocation and small element-wise kernels shared by layers.

Imported only when something runs on the device (it imports numba.cuda). Every kernel is declared through
:func:`crfrnn_np.cuda_kernel.gpu_kernel` with its launch signatures, so it is compiled to PTX in the tests.
Arrays are flattened views (``reshape(count)``) of C-contiguous device arrays: one thread per element.
"""
from numba import cuda

from .cuda_kernel import gpu_kernel, grid_1d

__all__ = ["empty", "fill", "flat", "copy", "scale", "axpby"]


@gpu_kernel(lambda f: [(f[::1], f)])
def _fill_kernel(out, value):
    """Thread i: ``out[i] = value``."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = value


@gpu_kernel(lambda f: [(f[::1], f[::1])])
def _copy_kernel(src, out):
    """Thread i: ``out[i] = src[i]``."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = src[i]


@gpu_kernel(lambda f: [(f, f[::1], f[::1])])
def _scale_kernel(alpha, x, out):
    """Thread i: ``out[i] = alpha x[i]``."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = alpha * x[i]


@gpu_kernel(lambda f: [(f, f[::1], f, f[::1], f[::1])])
def _axpby_kernel(alpha, x, beta, y, out):
    """Thread i: ``out[i] = alpha x[i] + beta y[i]`` (``out`` may be ``x`` or ``y``)."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = alpha * x[i] + beta * y[i]


def empty(shape, dtype):
    """An uninitialised C-contiguous device array."""
    return cuda.device_array(shape, dtype)


def flat(array):
    """The 1-D view of a C-contiguous device array (no copy)."""
    return array.reshape(array.size)


def fill(array, value):
    """Set every element of a device array to ``value`` (on the device)."""
    if array.size:
        out = flat(array)
        _fill_kernel[grid_1d(out.size)](out, array.dtype.type(value))


def copy(src, out):
    """``out[...] = src`` on the device (same size and dtype)."""
    if out.size:
        _copy_kernel[grid_1d(out.size)](flat(src), flat(out))


def scale(alpha, x, out):
    """``out = alpha x`` on the device (``out`` may be ``x``)."""
    if out.size:
        _scale_kernel[grid_1d(out.size)](out.dtype.type(alpha), flat(x), flat(out))


def axpby(alpha, x, beta, y, out):
    """``out = alpha x + beta y`` on the device, rounded as NumPy's ``x * alpha + y * beta`` (``out`` may be
    ``x`` or ``y``)."""
    if out.size:
        t = out.dtype.type
        _axpby_kernel[grid_1d(out.size)](t(alpha), flat(x), t(beta), flat(y), flat(out))
