"""Device kernels of Pooling (MAX with its argmax mask, AVE): the CPU kernels' loops (pool.py), one thread per
pooled element forward, one per bottom element backward (a gather over the windows that contain it, in the
CPU's order, so no atomics are needed). Planes are the (N*C) images; geometry: kernel, stride, pad."""
from numba import cuda

from crfrnn_np.cuda_kernel import I64, gpu_kernel, grid_1d

from .pool import NEG_FLT_MAX

_GEOMETRY = (I64,) * 6        # kh, kw, sh, sw, ph, pw

# Backward: the pooled rows whose window [o s - p, o s - p + k) contains row h run from
# ceil((h + p - k + 1) / s) = (h + p - k + s) // s (floor division, also for a negative numerator), at least 0,
# to (h + p) // s, at most the last pooled row; the same for columns.


@gpu_kernel(lambda f: [(f[:, :, ::1],) + _GEOMETRY + (f[:, :, ::1], I64[:, :, ::1])])
def max_forward_kernel(x, kh, kw, sh, sw, ph, pw, y, mask):
    t = cuda.grid(1)
    planes, out_h, out_w = y.shape
    if t >= planes * out_h * out_w:
        return
    ox = t % out_w
    oy = (t // out_w) % out_h
    p = t // (out_w * out_h)
    h_, w_ = x.shape[1], x.shape[2]
    hstart = oy * sh - ph
    hend = min(hstart + kh, h_)
    hstart = max(hstart, 0)
    wstart = ox * sw - pw
    wend = min(wstart + kw, w_)
    wstart = max(wstart, 0)
    best = NEG_FLT_MAX
    idx = -1
    for h in range(hstart, hend):
        for w in range(wstart, wend):
            v = x[p, h, w]
            if v > best:
                best = v
                idx = h * w_ + w
    y[p, oy, ox] = best
    mask[p, oy, ox] = idx


@gpu_kernel(lambda f: [(f[:, :, ::1], I64[:, :, ::1]) + _GEOMETRY + (f, f[:, :, ::1])])
def max_backward_kernel(dy, mask, kh, kw, sh, sw, ph, pw, zero, dx):
    t = cuda.grid(1)
    planes, h_, w_ = dx.shape
    if t >= planes * h_ * w_:
        return
    w = t % w_
    h = (t // w_) % h_
    p = t // (w_ * h_)
    me = h * w_ + w
    acc = zero
    for oy in range(max(0, (h + ph - kh + sh) // sh), min(dy.shape[1], (h + ph) // sh + 1)):
        for ox in range(max(0, (w + pw - kw + sw) // sw), min(dy.shape[2], (w + pw) // sw + 1)):
            if mask[p, oy, ox] == me:
                acc += dy[p, oy, ox]
    dx[p, h, w] = acc


@gpu_kernel(lambda f: [(f[:, :, ::1],) + _GEOMETRY + (f[:, :, ::1],)])
def ave_forward_kernel(x, kh, kw, sh, sw, ph, pw, y):
    t = cuda.grid(1)
    planes, out_h, out_w = y.shape
    if t >= planes * out_h * out_w:
        return
    ox = t % out_w
    oy = (t // out_w) % out_h
    p = t // (out_w * out_h)
    h_, w_ = x.shape[1], x.shape[2]
    hstart = oy * sh - ph
    hend = min(hstart + kh, h_ + ph)
    wstart = ox * sw - pw
    wend = min(wstart + kw, w_ + pw)
    pool_size = (hend - hstart) * (wend - wstart)
    s = 0.0                                          # float64, as the CPU kernel
    for h in range(max(hstart, 0), min(hend, h_)):
        for w in range(max(wstart, 0), min(wend, w_)):
            s += x[p, h, w]
    y[p, oy, ox] = s / pool_size


@gpu_kernel(lambda f: [(f[:, :, ::1],) + _GEOMETRY + (f, f[:, :, ::1])])
def ave_backward_kernel(dy, kh, kw, sh, sw, ph, pw, zero, dx):
    t = cuda.grid(1)
    planes, h_, w_ = dx.shape
    if t >= planes * h_ * w_:
        return
    w = t % w_
    h = (t // w_) % h_
    p = t // (w_ * h_)
    acc = zero
    for oy in range(max(0, (h + ph - kh + sh) // sh), min(dy.shape[1], (h + ph) // sh + 1)):
        hstart = oy * sh - ph
        hend = min(hstart + kh, h_ + ph)
        for ox in range(max(0, (w + pw - kw + sw) // sw), min(dy.shape[2], (w + pw) // sw + 1)):
            wstart = ox * sw - pw
            wend = min(wstart + kw, w_ + pw)
            acc += dy[p, oy, ox] / ((hend - hstart) * (wend - wstart))
    dx[p, h, w] = acc


def _planes(array, shape):
    return array.reshape((array.size // (shape[0] * shape[1]),) + tuple(shape))


def max_forward(x, geometry, y, mask):
    if y.size:
        max_forward_kernel[grid_1d(y.size)](_planes(x, x.shape[2:]), *geometry, _planes(y, y.shape[2:]), mask)


def max_backward(dy, mask, geometry, dx):
    if dx.size:
        max_backward_kernel[grid_1d(dx.size)](_planes(dy, dy.shape[2:]), mask, *geometry, dx.dtype.type(0),
                                              _planes(dx, dx.shape[2:]))


def ave_forward(x, geometry, y):
    if y.size:
        ave_forward_kernel[grid_1d(y.size)](_planes(x, x.shape[2:]), *geometry, _planes(y, y.shape[2:]))


def ave_backward(dy, geometry, dx):
    if dx.size:
        ave_backward_kernel[grid_1d(dx.size)](_planes(dy, dy.shape[2:]), *geometry, dx.dtype.type(0),
                                              _planes(dx, dx.shape[2:]))
