"""Device kernels of the layers that move values without arithmetic, or with one product: Crop (4-D
offsets), Concat (along an axis, blobs viewed as (outer, C, inner)), the element-wise product and quotient of
Dropout and Eltwise PROD, and Eltwise MAX with its mask. One thread per element of the smaller side; the
backward of Crop scatters into a zeroed bottom diff."""
from numba import cuda

from crfrnn_np.cuda_kernel import I32, I64, gpu_kernel, grid_1d
from crfrnn_np.cuda_ops import fill, flat

_A4 = lambda f: f[:, :, :, ::1]   # noqa: E731
_A3 = lambda f: f[:, :, ::1]      # noqa: E731


@gpu_kernel(lambda f: [(_A4(f), I64, I64, I64, I64, _A4(f), I64)])
def crop_kernel(big, o0, o1, o2, o3, small, to_small):
    """Thread t over ``small``: ``small[n, c, h, w] = big[n + o0, c + o1, h + o2, w + o3]`` when ``to_small``,
    the reverse assignment otherwise."""
    t = cuda.grid(1)
    n_, c_, h_, w_ = small.shape
    if t >= n_ * c_ * h_ * w_:
        return
    w = t % w_
    h = (t // w_) % h_
    c = (t // (w_ * h_)) % c_
    n = t // (w_ * h_ * c_)
    if to_small:
        small[n, c, h, w] = big[n + o0, c + o1, h + o2, w + o3]
    else:
        big[n + o0, c + o1, h + o2, w + o3] = small[n, c, h, w]


@gpu_kernel(lambda f: [(_A3(f), I64, _A3(f), I64)])
def concat_kernel(part, offset, whole, to_whole):
    """Thread t over ``part`` (outer, C_i, inner): ``whole[o, offset + k, i] = part[o, k, i]`` when
    ``to_whole``, the reverse otherwise."""
    t = cuda.grid(1)
    outer, c, inner = part.shape
    if t >= outer * c * inner:
        return
    i = t % inner
    k = (t // inner) % c
    o = t // (inner * c)
    if to_whole:
        whole[o, offset + k, i] = part[o, k, i]
    else:
        part[o, k, i] = whole[o, offset + k, i]


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


def crop(big, offsets, small):
    if small.size:
        crop_kernel[grid_1d(small.size)](big, *offsets, small, 1)


def uncrop(small, offsets, big):
    """``big = 0; big[offsets window] = small``."""
    fill(big, 0)
    if small.size:
        crop_kernel[grid_1d(small.size)](big, *offsets, small, 0)


def _view3(array, outer, inner):
    return array.reshape(outer, array.size // max(outer * inner, 1), inner)


def concat(parts, whole, outer, inner, to_whole=True):
    """Copy ``parts`` into (``to_whole``) or out of consecutive channel ranges of ``whole``; parts that are
    None are skipped (their offset still counts)."""
    offset = 0
    total = whole.size // max(outer * inner, 1)
    w3 = whole.reshape(outer, total, inner)
    for part, channels in parts:
        if part is not None and part.size:
            concat_kernel[grid_1d(part.size)](_view3(part, outer, inner), offset, w3, 1 if to_whole else 0)
        offset += channels


def multiply(a, b, out):
    if out.size:
        multiply_kernel[grid_1d(out.size)](flat(a), flat(b), flat(out))


def divide(a, b, out):
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
    if dx.size:
        eltwise_max_backward_kernel[grid_1d(dx.size)](flat(dy), mask, k, flat(dx))
