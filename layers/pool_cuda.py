"""Device kernels of Pooling (see pool.py for the windows, Caffe's pad and ceil rules, and the MAX tie rule).

Blobs are (N*C, H, W) planes. Forward: one thread per output element. Backward: one thread per bottom
element, summing over the windows that cover it, in the order the host adds them (rows then columns of the
output), so no atomics are needed and MAX gives the host's bits exactly.

``geo`` is the tuple ``(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w)``.
"""
from numba import cuda, types

from crfrnn_np.cuda_kernel import I64, gpu_kernel, grid_1d

from .pool import ave_window, covering_outputs

GEO = types.UniTuple(I64, 6)


@gpu_kernel(lambda f: [(f[:, :, ::1], GEO, f, f[:, :, ::1], I64[:, :, ::1], I64, f[:, :, ::1])])
def max_forward_kernel(x, geo, neg_max, y, mask, with_top_mask, top_mask):
    """Thread per output: the window's first strict maximum (from ``-FLT_MAX``) and its flat index ``h*W + w``
    (-1 for an empty window); the index also goes to ``top_mask`` (as a value) when ``with_top_mask``."""
    t = cuda.grid(1)
    planes, ph_out, pw_out = y.shape
    if t >= planes * ph_out * pw_out:
        return
    kh, kw, sh, sw, ph, pw = geo
    height, width = x.shape[1], x.shape[2]
    ox = t % pw_out
    oy = (t // pw_out) % ph_out
    p = t // (pw_out * ph_out)
    hstart = oy * sh - ph
    wstart = ox * sw - pw
    hend = min(hstart + kh, height)
    wend = min(wstart + kw, width)
    best = neg_max
    idx = -1
    for h in range(max(hstart, 0), hend):
        for w in range(max(wstart, 0), wend):
            v = x[p, h, w]
            if v > best:
                best = v
                idx = h * width + w
    y[p, oy, ox] = best
    mask[p, oy, ox] = idx
    if with_top_mask:
        top_mask[p, oy, ox] = idx


@gpu_kernel(lambda f: [(f[:, :, ::1], I64[:, :, ::1], GEO, f, f[:, :, ::1]),
                       (f[:, :, ::1], f[:, :, ::1], GEO, f, f[:, :, ::1])])
def max_backward_kernel(dy, mask, geo, zero, dx):
    """Thread per bottom element: the sum of ``dy`` over the covering windows whose mask names it."""
    t = cuda.grid(1)
    planes, height, width = dx.shape
    if t >= planes * height * width:
        return
    kh, kw, sh, sw, ph, pw = geo
    w = t % width
    h = (t // width) % height
    p = t // (width * height)
    # the outputs whose (unclipped) window covers row h, and column w
    oy0, oy1 = covering_outputs(h, ph, kh, sh, dy.shape[1])
    ox0, ox1 = covering_outputs(w, pw, kw, sw, dy.shape[2])
    me = h * width + w
    acc = zero
    for oy in range(oy0, oy1):
        for ox in range(ox0, ox1):
            if int(mask[p, oy, ox]) == me:
                acc += dy[p, oy, ox]
    dx[p, h, w] = acc


@gpu_kernel(lambda f: [(f[:, :, ::1], GEO, f[:, :, ::1])])
def ave_forward_kernel(x, geo, y):
    """Thread per output: the window's sum (float64, as the host) over the image part, divided by the pool
    size counted with the padding (Caffe's rule)."""
    t = cuda.grid(1)
    planes, ph_out, pw_out = y.shape
    if t >= planes * ph_out * pw_out:
        return
    kh, kw, sh, sw, ph, pw = geo
    height, width = x.shape[1], x.shape[2]
    ox = t % pw_out
    oy = (t // pw_out) % ph_out
    p = t // (pw_out * ph_out)
    hstart, hend = ave_window(oy, sh, ph, kh, height)
    wstart, wend = ave_window(ox, sw, pw, kw, width)
    pool_size = (hend - hstart) * (wend - wstart)
    s = 0.0
    for h in range(max(hstart, 0), min(hend, height)):
        for w in range(max(wstart, 0), min(wend, width)):
            s += x[p, h, w]
    y[p, oy, ox] = s / pool_size


@gpu_kernel(lambda f: [(f[:, :, ::1], GEO, f, f[:, :, ::1])])
def ave_backward_kernel(dy, geo, zero, dx):
    """Thread per bottom element: ``dx = sum over covering windows of dy / pool_size``, each term added to the
    stored value as the host does (``dx += g`` rounds to the values' type at every step)."""
    t = cuda.grid(1)
    planes, height, width = dx.shape
    if t >= planes * height * width:
        return
    kh, kw, sh, sw, ph, pw = geo
    w = t % width
    h = (t // width) % height
    p = t // (width * height)
    oy0, oy1 = covering_outputs(h, ph, kh, sh, dy.shape[1])
    ox0, ox1 = covering_outputs(w, pw, kw, sw, dy.shape[2])
    dx[p, h, w] = zero
    for oy in range(oy0, oy1):
        hstart, hend = ave_window(oy, sh, ph, kh, height)
        for ox in range(ox0, ox1):
            wstart, wend = ave_window(ox, sw, pw, kw, width)
            dx[p, h, w] += dy[p, oy, ox] / ((hend - hstart) * (wend - wstart))


def _launch(kernel, work, *args):
    if work:
        kernel[grid_1d(work)](*args)


def max_forward(x, geo, y, mask, top_mask=None):
    """MAX forward on (planes, H, W) device arrays; ``mask`` int64 like ``y``; ``top_mask`` optional."""
    neg = y.dtype.type(-3.4028234663852886e38)          # pool.NEG_FLT_MAX, -FLT_MAX in both float types
    _launch(max_forward_kernel, y.size, x, geo, neg, y, mask, 0 if top_mask is None else 1,
            y if top_mask is None else top_mask)


def max_backward(dy, mask, geo, dx):
    _launch(max_backward_kernel, dx.size, dy, mask, geo, dx.dtype.type(0), dx)


def ave_forward(x, geo, y):
    _launch(ave_forward_kernel, y.size, x, geo, y)


def ave_backward(dy, geo, dx):
    _launch(ave_backward_kernel, dx.size, dy, geo, dx.dtype.type(0), dx)


__all__ = ["max_forward", "max_backward", "ave_forward", "ave_backward"]
