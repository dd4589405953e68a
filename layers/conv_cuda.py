"""Convolution and Deconvolution on the device as implicit GEMMs: the im2col matrix is never built; each tile
of the GEMM loads the image (or output-gradient) elements it needs straight from the blob.

The three products of :class:`crfrnn_np.layers.conv.ConvGeometry`, per image ``n`` and group ``g``, in the
convolution's own view (image ``x`` (C, H, W), output ``y`` (O, OH, OW), ``Kg = C/G * kh * kw``)::

    forward          y_g[o, p]   = sum_k W[o, k] col_g[k, p]                 (+ bias[o])
    backward_data    x_g[c, q]   = sum_{o, ki, kj} W[o, (c, ki, kj)] y[o, p(q, ki, kj)]     (+ bias[c])
    backward_weight  dW[o, k]   += sum_{n, p} y_g[n, o, p] col_g[n][k, p]

with ``col[(c, ki, kj), (oh, ow)] = x[c, oh*sh - ph + ki*dh, ow*sw - pw + kj*dw]`` (0 outside the image), and in
backward_data ``p(q, ki, kj)`` the output position whose window puts tap (ki, kj) on pixel q = (h, w), when there
is one: ``h + ph - ki*dh`` divisible by ``sh``, the quotient inside ``0..OH-1`` (likewise for w). So
backward_data is col2im written as a gather (one thread per image element, no atomics), and backward_weight
sums over images and positions inside one GEMM (its inner dimension is N*P).

Every kernel is the tiled GEMM of gemm_cuda.py (T x T threads, one T x T tile of each operand in shared
memory per step), with the operand loads replaced by these index maps; the grid's z axis runs over images and
groups. Deconvolution calls the same three with the roles swapped (see deconv.py). 2-D only (0-D and 1-D
problems are lifted to 2-D, as on the host); the layers run 3-D and higher on the host.

``geo`` is the tuple ``(C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G)``.

**backward_data by output phase.** For a given pixel only one tap in about ``sh * sw`` meets an output position
(the divisibility above), and which ones depends only on the pixel's phase ``(h mod sh, w mod sw)``: the taps
``ki = ki0 + a * sh/gcd(sh, dh)``, ``a < na`` (:func:`phase_taps`; likewise kj). So the pixels are split by phase,
and each phase is a dense implicit GEMM of its own, over the inner dimension ``(o, a, b)`` of length
``Og * na * nb`` instead of ``Og * kh * kw``; the grid's x axis runs over (phase, pixel block of the phase). A
GEMM over every tap would spend ``sh * sw`` times the work on loads of zeros: 64 times for the stride-8
``upscore`` of FCN-8s (kernel 16: 4 of its 256 taps reach a pixel). The valid taps keep the dense order
(o, ki, kj), so each output is the same sum in the same order as the dense GEMM's (zeros left out). This is the
only product with that form: Deconvolution's data gradient is the convolution forward, a dense gather, and both
weight gradients run over output positions, each of which meets every tap.
"""
from numba import cuda, types

from crfrnn_np.config import GEMM_TILE as T
from crfrnn_np.cuda_kernel import I64, gpu_device, gpu_kernel

GEO = types.UniTuple(I64, 15)


@gpu_kernel(lambda f: [(f[:, :, :, ::1], f[:, ::1], f[::1], GEO, I64, f, f[:, :, ::1])])
def conv_forward_kernel(x, w, bias, geo, has_bias, zero, y):
    """Block (bx, by, n*G + g): ``y[n, g*Og + by*T + ty, bx*T + tx]``."""
    tile_a = cuda.shared.array((T, T), dtype=y.dtype)
    tile_b = cuda.shared.array((T, T), dtype=y.dtype)
    C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G = geo
    cg = C // G
    og = O // G
    khw = kh * kw
    kg = cg * khw
    n = cuda.blockIdx.z // G
    g = cuda.blockIdx.z - n * G
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row = cuda.blockIdx.y * T + ty                      # output channel in the group
    col = cuda.blockIdx.x * T + tx                      # output position
    oh = col // OW
    ow = col - oh * OW
    acc = zero
    for k0 in range(0, kg, T):
        k = k0 + tx
        v = zero
        if row < og and k < kg:
            v = w[g * og + row, k]
        tile_a[ty, tx] = v
        k = k0 + ty                                     # col[k, col]: channel c, tap (ki, kj)
        v = zero
        if col < OH * OW and k < kg:
            c = k // khw
            r = k - c * khw
            ki = r // kw
            kj = r - ki * kw
            h = oh * sh - ph + ki * dh
            ww = ow * sw - pw + kj * dw
            if 0 <= h < H and 0 <= ww < W:
                v = x[n, g * cg + c, h, ww]
        tile_b[ty, tx] = v
        cuda.syncthreads()
        for j in range(T):
            acc += tile_a[ty, j] * tile_b[j, tx]
        cuda.syncthreads()
    if row < og and col < OH * OW:
        o = g * og + row
        y[n, o, col] = acc + bias[o] if has_bias else acc


@gpu_device(lambda f: [(I64, I64, I64, I64)])
def phase_taps(r, s, d, k):
    """The taps ``t`` in ``0..k-1`` with ``r - t*d`` divisible by ``s``: ``(first, step, count)``, the taps being
    ``first + i*step`` for ``i < count`` (``count`` 0 when there is none).

    For pixel ``h`` of backward_data, ``r = h + pad`` (and only ``r mod s`` matters), ``s`` the stride, ``d`` the
    dilation and ``k`` the kernel size: the taps that meet an output position. They repeat with period
    ``s / gcd(s, d)``, so the first lies below ``min(k, s)`` if any does.
    """
    first = -1
    for t in range(min(k, s)):
        if (r - t * d) % s == 0:
            first = t
            break
    if first < 0:
        return 0, 1, 0
    step = 1
    while (step * d) % s != 0:
        step += 1
    return first, step, (k - first + step - 1) // step


@gpu_kernel(lambda f: [(f[:, :, ::1], f[:, ::1], f[::1], GEO, I64, f, f[:, :, ::1])])
def conv_backward_data_kernel(dy, w, bias, geo, has_bias, zero, dx):
    """Block (phase*BX + bx, by, n*G + g): ``dx[n, g*Cg + by*T + ty, q]`` for the ``bx*T + tx``-th pixel ``q`` of
    the phase ``(h mod sh, w mod sw)`` (BX blocks per phase; see the module docstring)."""
    tile_a = cuda.shared.array((T, T), dtype=dx.dtype)
    tile_b = cuda.shared.array((T, T), dtype=dx.dtype)
    C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G = geo
    cg = C // G
    og = O // G
    # this block's phase (py, px): its pixels h = py + i*sh, w = px + j*sw form an nh x nw grid
    per_phase = ((H + sh - 1) // sh * ((W + sw - 1) // sw) + T - 1) // T
    phase = cuda.blockIdx.x // per_phase
    py = phase // sw
    px = phase - py * sw
    nh = (H - py + sh - 1) // sh
    nw = (W - px + sw - 1) // sw
    if py >= H or px >= W:                              # an empty phase (stride larger than the image)
        return
    # the taps that reach this phase: ki = ki0 + a*si (a < na), kj = kj0 + b*sj (b < nb)
    ki0, si, na = phase_taps(py + ph, sh, dh, kh)
    kj0, sj, nb = phase_taps(px + pw, sw, dw, kw)
    taps = na * nb
    inner = og * taps                                   # (o, a, b): (o, ki, kj) in the dense order
    n = cuda.blockIdx.z // G
    g = cuda.blockIdx.z - n * G
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row = cuda.blockIdx.y * T + ty                      # input channel in the group
    col = (cuda.blockIdx.x - phase * per_phase) * T + tx    # pixel of the phase
    i = col // nw
    h = py + i * sh
    ww = px + (col - i * nw) * sw
    acc = zero
    for k0 in range(0, inner, T):
        k = k0 + tx                                     # W[g*Og + o, (row, ki, kj)]
        v = zero
        if row < cg and k < inner:
            o = k // taps
            a = (k - o * taps) // nb
            b = k - o * taps - a * nb
            v = w[g * og + o, (row * kh + ki0 + a * si) * kw + kj0 + b * sj]
        tile_a[ty, tx] = v
        k = k0 + ty                                     # dy[n, g*Og + o, p(q, ki, kj)], 0 off the output
        v = zero
        if col < nh * nw and k < inner:
            o = k // taps
            a = (k - o * taps) // nb
            b = k - o * taps - a * nb
            oh = (h + ph - (ki0 + a * si) * dh) // sh      # exact quotients: the phase's taps only
            ow = (ww + pw - (kj0 + b * sj) * dw) // sw
            if 0 <= oh < OH and 0 <= ow < OW:
                v = dy[n, g * og + o, oh * OW + ow]
        tile_b[ty, tx] = v
        cuda.syncthreads()
        for j in range(T):
            acc += tile_a[ty, j] * tile_b[j, tx]
        cuda.syncthreads()
    if row < cg and col < nh * nw:
        c = g * cg + row
        dx[n, c, h * W + ww] = acc + bias[c] if has_bias else acc


@gpu_kernel(lambda f: [(f[:, :, :, ::1], f[:, :, ::1], GEO, f, f[:, ::1])])
def conv_backward_weight_kernel(x, dy, geo, zero, dw):
    """Block (bx, by, g): ``dW[g*Og + by*T + ty, bx*T + tx] += sum over (n, p)`` (inner dimension N*P)."""
    tile_a = cuda.shared.array((T, T), dtype=dw.dtype)
    tile_b = cuda.shared.array((T, T), dtype=dw.dtype)
    C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw_, G = geo
    cg = C // G
    og = O // G
    khw = kh * kw
    kg = cg * khw
    P = OH * OW
    inner = x.shape[0] * P
    g = cuda.blockIdx.z
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row = cuda.blockIdx.y * T + ty                      # output channel in the group
    col = cuda.blockIdx.x * T + tx                      # (c, ki, kj)
    c = col // khw
    r = col - c * khw
    ki = r // kw
    kj = r - ki * kw
    acc = zero
    for s0 in range(0, inner, T):
        s = s0 + tx                                     # dy[n, g*Og + row, p], s = n*P + p
        v = zero
        if row < og and s < inner:
            n = s // P
            v = dy[n, g * og + row, s - n * P]
        tile_a[ty, tx] = v
        s = s0 + ty                                     # col_n[col, p]
        v = zero
        if col < kg and s < inner:
            n = s // P
            p = s - n * P
            oh = p // OW
            ow = p - oh * OW
            h = oh * sh - ph + ki * dh
            ww = ow * sw - pw + kj * dw_
            if 0 <= h < H and 0 <= ww < W:
                v = x[n, g * cg + c, h, ww]
        tile_b[ty, tx] = v
        cuda.syncthreads()
        for j in range(T):
            acc += tile_a[ty, j] * tile_b[j, tx]
        cuda.syncthreads()
    if row < og and col < kg:
        dw[g * og + row, col] += acc


def _geo(geometry):
    """The kernels' geometry tuple of a (2-D) ConvGeometry."""
    (H, W), (OH, OW) = geometry.in2, geometry.out2
    return tuple(int(v) for v in (geometry.C, H, W, geometry.O, OH, OW) + tuple(geometry.kernel)
                 + tuple(geometry.stride) + tuple(geometry.pad) + tuple(geometry.dilation) + (geometry.G,))


def _blocks(n):
    return (n + T - 1) // T


def supported(geometry):
    """Whether the device kernels handle this geometry (2-D, or lifted to 2-D)."""
    return len(geometry.in2) == 2


def forward(geometry, num, x, w, y, bias=None):
    """``y = conv(x; W) (+ bias)`` for device arrays of ``num`` images: x (num, C, *in), y (num, O, *out)."""
    geo = _geo(geometry)
    C, H, W, O, OH, OW = geo[:6]
    G = geometry.G
    if not (num and OH * OW and O):
        return
    y3 = y.reshape(num, O, OH * OW)
    grid = (_blocks(OH * OW), _blocks(O // G), num * G)
    conv_forward_kernel[grid, (T, T)](x.reshape(num, C, H, W), w.reshape(O, -1),
                                      w.reshape(w.size) if bias is None else bias, geo,
                                      0 if bias is None else 1, y.dtype.type(0), y3)


def backward_data(geometry, num, dy, w, dx, bias=None):
    """``dx = col2im(W^T dy) (+ bias)`` for device arrays: dy (num, O, *out), dx (num, C, *in) (overwritten)."""
    geo = _geo(geometry)
    C, H, W, O, OH, OW = geo[:6]
    G = geometry.G
    if not (num and H * W and C):
        return
    sh, sw = geo[8:10]
    per_phase = _blocks(((H + sh - 1) // sh) * ((W + sw - 1) // sw))        # blocks of the largest phase
    grid = (sh * sw * per_phase, _blocks(C // G), num * G)
    conv_backward_data_kernel[grid, (T, T)](dy.reshape(num, O, OH * OW), w.reshape(O, -1),
                                            w.reshape(w.size) if bias is None else bias, geo,
                                            0 if bias is None else 1, dx.dtype.type(0),
                                            dx.reshape(num, C, H * W))


def backward_weight(geometry, num, x, dy, dw):
    """``dW += dy im2col(x)^T`` summed over ``num`` images (device arrays; ``dw`` the weight-shaped diff)."""
    geo = _geo(geometry)
    C, H, W, O, OH, OW = geo[:6]
    G = geometry.G
    dw2 = dw.reshape(O, -1)
    if not (num and OH * OW and dw2.size):
        return
    grid = (_blocks(dw2.shape[1]), _blocks(O // G), G)
    conv_backward_weight_kernel[grid, (T, T)](x.reshape(num, C, H, W), dy.reshape(num, O, OH * OW), geo,
                                              dw.dtype.type(0), dw2)


__all__ = ["forward", "backward_data", "backward_weight", "supported"]
