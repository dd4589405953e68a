"""Device kernels of the mean-field step layers (Softmax, Compatibility): one thread per output element or
per pixel, the same arithmetic as the layers' NumPy code (see softmax.py, compatibility.py).

Blobs are viewed as (outer, C, inner) C-contiguous device arrays: for Softmax outer x inner are the positions
around the soft-maxed axis, for Compatibility (N, C, H*W)."""
import math

from numba import cuda

from crfrnn_np.cuda_kernel import I64, gpu_device, gpu_kernel, grid_1d
from crfrnn_np.errors import ShapeError

@gpu_device(lambda f: [(f[:, :, ::1], f[:, :, ::1], I64, I64)])
def softmax_column(x, y, o, i):
    """``y[o, :, i] = exp(x[o, :, i] - max) / sum exp(...)``, the Softmax layer's max-subtracted form, for one
    position; ``y`` may be ``x`` (each element is read before it is written). Shared by the Softmax step's
    kernel and the FUSED engine's pixel kernel (fused/meanfield_cuda.py)."""
    c = x.shape[1]
    m = x[o, 0, i]
    for k in range(1, c):
        m = max(m, x[o, k, i])
    s = math.exp(x[o, 0, i] - m)
    y[o, 0, i] = s
    for k in range(1, c):
        e = math.exp(x[o, k, i] - m)
        y[o, k, i] = e
        s += e
    for k in range(c):
        y[o, k, i] = y[o, k, i] / s


@gpu_kernel(lambda f: [(f[:, :, ::1], f[:, :, ::1])])
def softmax_forward_kernel(x, y):
    """Thread t = o*inner + i: :func:`softmax_column` at position (o, i)."""
    t = cuda.grid(1)
    outer, c, inner = x.shape
    if t >= outer * inner:
        return
    o = t // inner
    softmax_column(x, y, o, t - o * inner)


@gpu_kernel(lambda f: [(f[:, :, ::1], f[:, :, ::1], f[:, :, ::1])])
def softmax_backward_kernel(y, dy, dx):
    """Thread t = o*inner + i: ``dx = (dy - sum_k dy y) y`` at position (o, i)."""
    t = cuda.grid(1)
    outer, c, inner = y.shape
    if t >= outer * inner:
        return
    o = t // inner
    i = t - o * inner
    s = dy[o, 0, i] * y[o, 0, i]
    for k in range(1, c):
        s += dy[o, k, i] * y[o, k, i]
    for k in range(c):
        dx[o, k, i] = (dy[o, k, i] - s) * y[o, k, i]


# ``zero`` (of the values' type) starts the sums: reading the output to get a typed zero would pick up
# whatever the fresh device buffer holds (NaN * 0 is NaN).
@gpu_kernel(lambda f: [(f[:, ::1], f[:, :, ::1], I64, f, f[:, :, ::1])])
def compatibility_kernel(w, x, transpose, zero, y):
    """Thread t = (n*C' + j)*P + p: ``y[n, j, p] = sum_k W[j, k] x[n, k, p]`` (``W[k, j]`` when ``transpose``)."""
    t = cuda.grid(1)
    n, c_out, pixels = y.shape
    if t >= n * c_out * pixels:
        return
    p = t % pixels
    j = (t // pixels) % c_out
    b = t // (pixels * c_out)
    c = x.shape[1]
    acc = zero
    for k in range(c):
        wk = w[k, j] if transpose else w[j, k]
        acc += wk * x[b, k, p]
    y[b, j, p] = acc


@gpu_kernel(lambda f: [(f[:, :, ::1], f[:, :, ::1], f, f[:, ::1])])
def compatibility_weight_diff_kernel(dy, x, zero, dw):
    """Thread t = j*C + k: ``dW[j, k] += sum_{n, p} dy[n, j, p] x[n, k, p]`` (accumulates, Caffe's rule)."""
    t = cuda.grid(1)
    c_out, c = dw.shape
    if t >= c_out * c:
        return
    j = t // c
    k = t - j * c
    acc = zero
    for b in range(x.shape[0]):
        for p in range(x.shape[2]):
            acc += dy[b, j, p] * x[b, k, p]
    dw[j, k] += acc


def planes(array, outer, c, inner):
    """A C-contiguous device array viewed as (outer, C, inner)."""
    if array.size != outer * c * inner:
        raise ShapeError("device view (%d, %d, %d) of an array of %d elements" % (outer, c, inner, array.size))
    return array.reshape(outer, c, inner)


def softmax(x, y, outer, c, inner):
    if outer * inner:
        softmax_forward_kernel[grid_1d(outer * inner)](planes(x, outer, c, inner), planes(y, outer, c, inner))


def softmax_backward(y, dy, dx, outer, c, inner):
    if outer * inner:
        softmax_backward_kernel[grid_1d(outer * inner)](planes(y, outer, c, inner), planes(dy, outer, c, inner),
                                                        planes(dx, outer, c, inner))


def compatibility(w, x, y, transpose):
    """``y[n] = W x[n]`` (``W^T`` when ``transpose``) for device arrays x (N, C, H, W), y (N, C', H, W)."""
    n, c_out = y.shape[:2]
    pixels = y.size // max(n * c_out, 1)
    if y.size:
        compatibility_kernel[grid_1d(y.size)](w, planes(x, n, x.shape[1], pixels), 1 if transpose else 0,
                                              y.dtype.type(0), planes(y, n, c_out, pixels))


def compatibility_weight_diff(dy, x, dw):
    """``dW += sum_n dy[n] x[n]^T`` for device arrays dy (N, C', H, W), x (N, C, H, W), dW (C', C)."""
    n, c_out = dy.shape[:2]
    pixels = dy.size // max(n * c_out, 1)
    if dw.size and n * pixels:
        compatibility_weight_diff_kernel[grid_1d(dw.size)](planes(dy, n, c_out, pixels),
                                                           planes(x, n, x.shape[1], pixels), dw.dtype.type(0), dw)


__all__ = ["softmax", "softmax_backward", "compatibility", "compatibility_weight_diff"]
