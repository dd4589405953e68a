"""Device kernels of Convolution and Deconvolution (2-D, any group, stride, pad, dilation) as an implicit
GEMM: no im2col buffer exists; each thread forms one output element's dot product by reading the input
window it would have gathered. Deconvolution uses the same three kernels with the roles of forward and
backward-data swapped, as its CPU code does.

Shapes (the conv view, see conv.py): x (N, C_in, H, W), weight (C_out, C_in / group, KH, KW),
y (N, C_out, OH, OW). Geometry scalars: pad, stride, dilation per axis and the group count.

These are direct (untiled) kernels: correct for every geometry and tested against the CPU layers, but not yet
the shared-memory tiled GEMM that the large 500 x 500 layers want.
"""
from numba import cuda

from crfrnn_np.cuda_kernel import I64, gpu_kernel, grid_1d

_GEOMETRY = (I64,) * 7        # pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w, group
_ARR4 = lambda f: f[:, :, :, ::1]  # noqa: E731


@gpu_kernel(lambda f: [(_ARR4(f), _ARR4(f)) + _GEOMETRY + (f, _ARR4(f))])
def conv_forward_kernel(x, w, ph, pw, sh, sw, dh, dw, group, zero, y):
    """Thread t over y: ``y[n, o, i, j] = sum_{c, a, b} w[o, c, a, b] x[n, g c_g + c, yy, xx]`` with
    ``yy = i sh - ph + a dh``, ``xx = j sw - pw + b dw`` (g the group of output channel o)."""
    t = cuda.grid(1)
    n_, c_out, oh, ow = y.shape
    if t >= n_ * c_out * oh * ow:
        return
    j = t % ow
    i = (t // ow) % oh
    o = (t // (ow * oh)) % c_out
    n = t // (ow * oh * c_out)
    cin_g = w.shape[1]
    kh, kw = w.shape[2], w.shape[3]
    h, wd = x.shape[2], x.shape[3]
    c0 = (o // (c_out // group)) * cin_g
    acc = zero
    for c in range(cin_g):
        for a in range(kh):
            yy = i * sh - ph + a * dh
            if yy < 0 or yy >= h:
                continue
            for b in range(kw):
                xx = j * sw - pw + b * dw
                if 0 <= xx < wd:
                    acc += w[o, c, a, b] * x[n, c0 + c, yy, xx]
    y[n, o, i, j] = acc


@gpu_kernel(lambda f: [(_ARR4(f), _ARR4(f)) + _GEOMETRY + (f, _ARR4(f))])
def conv_backward_data_kernel(dy, w, ph, pw, sh, sw, dh, dw, group, zero, dx):
    """Thread t over dx: the sum of ``w[o, c, a, b] dy[n, o, i, j]`` over every output (o, i, j) whose window
    reads input (c, yy, xx) through tap (a, b)."""
    t = cuda.grid(1)
    n_, c_in, h, wd = dx.shape
    if t >= n_ * c_in * h * wd:
        return
    xx = t % wd
    yy = (t // wd) % h
    c = (t // (wd * h)) % c_in
    n = t // (wd * h * c_in)
    c_out = dy.shape[1]
    oh, ow = dy.shape[2], dy.shape[3]
    cin_g = w.shape[1]
    cout_g = c_out // group
    g = c // cin_g
    cl = c - g * cin_g
    kh, kw = w.shape[2], w.shape[3]
    acc = zero
    for a in range(kh):
        iy = yy + ph - a * dh
        if iy < 0 or iy % sh != 0:
            continue
        i = iy // sh
        if i >= oh:
            continue
        for b in range(kw):
            jx = xx + pw - b * dw
            if jx < 0 or jx % sw != 0:
                continue
            j = jx // sw
            if j >= ow:
                continue
            for o in range(g * cout_g, (g + 1) * cout_g):
                acc += w[o, cl, a, b] * dy[n, o, i, j]
    dx[n, c, yy, xx] = acc


@gpu_kernel(lambda f: [(_ARR4(f), _ARR4(f)) + _GEOMETRY + (f, _ARR4(f))])
def conv_backward_weight_kernel(x, dy, ph, pw, sh, sw, dh, dw, group, zero, dwt):
    """Thread t over the weight: ``dW[o, c, a, b] += sum_{n, i, j} dy[n, o, i, j] x[n, g c_g + c, ...]``."""
    t = cuda.grid(1)
    c_out, cin_g, kh, kw = dwt.shape
    if t >= c_out * cin_g * kh * kw:
        return
    b = t % kw
    a = (t // kw) % kh
    c = (t // (kw * kh)) % cin_g
    o = t // (kw * kh * cin_g)
    c0 = (o // (c_out // group)) * cin_g
    h, wd = x.shape[2], x.shape[3]
    acc = zero
    for n in range(x.shape[0]):
        for i in range(dy.shape[2]):
            yy = i * sh - ph + a * dh
            if yy < 0 or yy >= h:
                continue
            for j in range(dy.shape[3]):
                xx = j * sw - pw + b * dw
                if 0 <= xx < wd:
                    acc += dy[n, o, i, j] * x[n, c0 + c, yy, xx]
    dwt[o, c, a, b] += acc


@gpu_kernel(lambda f: [(f[:, :, ::1], f[::1])])
def bias_add_kernel(y, bias):
    """Thread t over y (N, C, P): ``y[n, c, p] += bias[c]``."""
    t = cuda.grid(1)
    n_, c_, p_ = y.shape
    if t >= n_ * c_ * p_:
        return
    c = (t // p_) % c_
    y[t // (p_ * c_), c, t % p_] += bias[c]


@gpu_kernel(lambda f: [(f[:, :, ::1], f, f[::1])])
def bias_backward_kernel(dy, zero, db):
    """Thread c: ``db[c] += sum_{n, p} dy[n, c, p]``."""
    c = cuda.grid(1)
    if c >= dy.shape[1]:
        return
    acc = zero
    for n in range(dy.shape[0]):
        for p in range(dy.shape[2]):
            acc += dy[n, c, p]
    db[c] += acc


def _launch(kernel, first, second, geometry, out):
    if out.size:
        kernel[grid_1d(out.size)](first, second, *geometry, out.dtype.type(0), out)


def forward(x, w, geometry, y):
    """``y = conv(x, w)`` on the device; ``geometry`` = (pad_h, pad_w, stride_h, stride_w, dil_h, dil_w, group)."""
    _launch(conv_forward_kernel, x, w, geometry, y)


def backward_data(dy, w, geometry, dx):
    """``dx = conv^T(dy, w)`` (overwrites ``dx``)."""
    _launch(conv_backward_data_kernel, dy, w, geometry, dx)


def backward_weight(x, dy, geometry, dw):
    """``dw += dconv/dw`` (accumulates)."""
    if dw.size:
        conv_backward_weight_kernel[grid_1d(dw.size)](x, dy, *geometry, dw.dtype.type(0), dw)


def add_bias(y, bias):
    n, c = y.shape[:2]
    if y.size:
        bias_add_kernel[grid_1d(y.size)](y.reshape(n, c, y.size // (n * c)), bias)


def bias_backward(dy, db):
    n, c = dy.shape[:2]
    if c:
        bias_backward_kernel[grid_1d(c)](dy.reshape(n, c, dy.size // max(n * c, 1)), dy.dtype.type(0), db)
