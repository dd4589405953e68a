"""im2col / col2im: the column buffer that turns a convolution into one GEMM.

For one image ``x`` of shape ``(C, *in_spatial)`` and a kernel of shape ``kernel`` (one size per spatial axis),
the column buffer has shape ``(C * prod(kernel), prod(out_spatial))``:

* row ``r`` enumerates ``(c, k_0, k_1, ...)`` in row-major order (channel first, then the kernel offsets,
  e.g. ``r = (c*kh + i)*kw + j`` in 2-D);
* column ``q`` enumerates the output positions in row-major order (``q = oy*out_w + ox``);
* ``col[r, q] = x[c, o_0*s_0 - p_0 + k_0*d_0, ...]``, or 0 where that position falls in the zero padding.

``col2im`` is the adjoint: it scatter-ADDS every column entry back to its image position (entries in the
padding are dropped). Caffe's ``util/im2col.cpp`` defines this ordering; the 2-D kernels here work on a band
of output rows ``[row0, row1)`` so a caller can bound the buffer size.

Three implementations:

* :func:`im2col_2d` / :func:`col2im_2d`: ``numba.njit(cache=True, nogil=True)`` range kernels, spread over
  threads (:func:`crfrnn_np.threads.parallel_for`) in pieces of at least ``config.PARALLEL_MIN_WORK`` elements
  (the fast path); stride 1 and dilation 1 (most layers of VGG/FCN nets) take a kernel of row-slice copies
  split over (channel, kernel row, output row) triples, a finer split than one task per column row;
* :func:`im2col_nd` / :func:`col2im_nd`: any number of spatial axes, vectorised NumPy through a gather index
  (used for 3-D and more, and when ``force_nd_im2col`` is set);
* :func:`im2col_reference`: explicit loops over ``(row, column)``, readable and slow, for tests.
"""
import itertools

import numba
import numpy as np

from crfrnn_np.kernel import cpu_kernel
from crfrnn_np.threads import items_per_thread, parallel_for



def conv_out_shape(in_shape, kernel, pad, stride, dilation):
    """Output spatial shape of a convolution (FLOOR rounding, as Caffe).

    ``extent = dilation*(k-1) + 1``; ``out = (in + 2*pad - extent) // stride + 1``. Callers check that
    ``in + 2*pad >= extent`` first (Caffe's C division would silently truncate a negative value).
    """
    return tuple((i + 2 * p - (d * (k - 1) + 1)) // s + 1
                 for i, k, p, s, d in zip(in_shape, kernel, pad, stride, dilation))


# ---- 2-D numba kernels -----------------------------------------------------------------------------------
# One row (im2col) or one channel (col2im) per call of the inner kernel; a range kernel runs a piece of them
# and crfrnn_np.threads.parallel_for spreads the pieces over threads. Small problems stay on one thread: a
# thread costs more than it saves there (and much more on a loaded machine).



@numba.njit(cache=True, nogil=True, inline="always")
def _valid_columns(ix0, sw, W, out_w):
    """Output columns ``[lo, hi)`` whose input column ``ix0 + ox*sw`` lies in ``[0, W)``."""
    lo = 0
    if ix0 < 0:
        lo = (-ix0 + sw - 1) // sw
    hi = 0
    if W - ix0 > 0:
        hi = (W - ix0 + sw - 1) // sw
    if hi > out_w:
        hi = out_w
    if lo > hi:
        lo = hi
    return lo, hi


@numba.njit(cache=True, nogil=True, inline="always")
def _im2col_row(x, r, kh, kw, ph, pw, sh, sw, dh, dw, row0, row1, out_w, col):
    H, W = x.shape[1], x.shape[2]
    c = r // (kh * kw)
    i = (r // kw) % kh
    j = r % kw
    ix0 = j * dw - pw
    lo, hi = _valid_columns(ix0, sw, W, out_w)
    for oy in range(row1 - row0):
        iy = (row0 + oy) * sh - ph + i * dh
        base = oy * out_w
        if iy < 0 or iy >= H:
            for ox in range(out_w):
                col[r, base + ox] = 0
        else:
            for ox in range(lo):
                col[r, base + ox] = 0
            for ox in range(lo, hi):
                col[r, base + ox] = x[c, iy, ix0 + ox * sw]
            for ox in range(hi, out_w):
                col[r, base + ox] = 0


@numba.njit(cache=True, nogil=True, inline="always")
def _col2im_channel(col, c, kh, kw, ph, pw, sh, sw, dh, dw, row0, row1, out_w, x):
    H, W = x.shape[1], x.shape[2]
    for i in range(kh):
        for j in range(kw):
            r = (c * kh + i) * kw + j
            ix0 = j * dw - pw
            lo, hi = _valid_columns(ix0, sw, W, out_w)
            for oy in range(row1 - row0):
                iy = (row0 + oy) * sh - ph + i * dh
                if iy < 0 or iy >= H:
                    continue
                base = oy * out_w
                for ox in range(lo, hi):
                    x[c, iy, ix0 + ox * sw] += col[r, base + ox]


@cpu_kernel
def _im2col_2d(x, kh, kw, ph, pw, sh, sw, dh, dw, row0, row1, out_w, col, lo, hi):
    """Column rows ``lo..hi-1``."""
    for r in range(lo, hi):
        _im2col_row(x, r, kh, kw, ph, pw, sh, sw, dh, dw, row0, row1, out_w, col)


@cpu_kernel
def _col2im_2d(col, kh, kw, ph, pw, sh, sw, dh, dw, row0, row1, out_w, x, lo, hi):
    """Image channels ``lo..hi-1`` (a channel is written by one thread only)."""
    for c in range(lo, hi):
        _col2im_channel(col, c, kh, kw, ph, pw, sh, sw, dh, dw, row0, row1, out_w, x)


@numba.njit(cache=True, nogil=True, inline="always")
def _im2col_s1_rows(x, t, kh, kw, ph, pw, row0, nrows, out_w, col):
    """Stride-1, dilation-1 im2col of one (channel, kernel row, output row) triple ``t`` as row-slice copies.

    ``t = (c*kh + i)*nrows + oy``: the ``kw`` column rows ``r = (c*kh + i)*kw + j`` of output row ``oy``
    of the band all copy from the same input row ``iy = row0 + oy - ph + i``.
    """
    H, W = x.shape[1], x.shape[2]
    ci = t // nrows
    oy = t - ci * nrows
    c = ci // kh
    i = ci - c * kh
    iy = row0 + oy - ph + i
    base = oy * out_w
    for j in range(kw):
        r = ci * kw + j
        ix0 = j - pw
        lo = max(0, -ix0)
        hi = min(out_w, W - ix0)
        if iy < 0 or iy >= H or hi <= lo:
            col[r, base:base + out_w] = 0
        else:
            col[r, base:base + lo] = 0
            col[r, base + lo:base + hi] = x[c, iy, ix0 + lo:ix0 + hi]
            col[r, base + hi:base + out_w] = 0


@cpu_kernel
def _im2col_2d_s1(x, kh, kw, ph, pw, row0, row1, out_w, col, lo, hi):
    """(channel, kernel row, output row) triples ``lo..hi-1``."""
    nrows = row1 - row0
    for t in range(lo, hi):
        _im2col_s1_rows(x, t, kh, kw, ph, pw, row0, nrows, out_w, col)


def im2col_2d(x, kernel, pad, stride, dilation, out_hw, rows=None, col=None):
    """Column buffer of output rows ``rows = (row0, row1)`` of one 2-D image.

    Parameters
    ----------
    x : ndarray, shape (C, H, W), C-contiguous
    kernel, pad, stride, dilation : pairs of int
    out_hw : pair of int
        The full output size (from :func:`conv_out_shape`).
    rows : (int, int), optional
        Band of output rows (default: all).
    col : ndarray, optional
        Buffer of shape ``(C*kh*kw, (row1-row0)*out_w)`` and x's dtype to fill (allocated if None).

    Returns
    -------
    col : ndarray, shape (C*kh*kw, (row1-row0)*out_w)
    """
    C = x.shape[0]
    row0, row1 = rows if rows is not None else (0, out_hw[0])
    if col is None:
        col = np.empty((C * kernel[0] * kernel[1], (row1 - row0) * out_hw[1]), dtype=x.dtype)
    if tuple(stride) == (1, 1) and tuple(dilation) == (1, 1):
        triples = C * kernel[0] * (row1 - row0)
        parallel_for(_im2col_2d_s1, triples, x, kernel[0], kernel[1], pad[0], pad[1], row0, row1, out_hw[1], col,
                     grain=items_per_thread(triples, col.size))
        return col
    parallel_for(_im2col_2d, col.shape[0], x, kernel[0], kernel[1], pad[0], pad[1], stride[0], stride[1],
                 dilation[0], dilation[1], row0, row1, out_hw[1], col, grain=items_per_thread(col.shape[0], col.size))
    return col


def col2im_2d(col, kernel, pad, stride, dilation, out_hw, x, rows=None):
    """Scatter-add ``col`` (band ``rows`` of output rows) into the image ``x`` of shape (C, H, W).

    ``x`` is NOT zeroed here; the caller zeroes it once before adding all bands.
    """
    row0, row1 = rows if rows is not None else (0, out_hw[0])
    parallel_for(_col2im_2d, x.shape[0], col, kernel[0], kernel[1], pad[0], pad[1], stride[0], stride[1],
                 dilation[0], dilation[1], row0, row1, out_hw[1], x, grain=items_per_thread(x.shape[0], col.size))
    return x


# ---- N-D NumPy path -----------------------------------------------------------------------------------------

def nd_gather_index(channels, in_shape, kernel, pad, stride, dilation):
    """Flat indices into the zero-padded image ``(C, *(in + 2*pad))`` such that ``col = xpad.ravel()[idx]``.

    Returns
    -------
    idx : ndarray of intp, shape (C*prod(kernel), prod(out))
    """
    out_shape = conv_out_shape(in_shape, kernel, pad, stride, dilation)
    padded = tuple(i + 2 * p for i, p in zip(in_shape, pad))
    nsp = len(in_shape)
    # coordinate along axis a of (kernel offset k_a, output o_a) in the padded image: o_a*s_a + k_a*d_a
    idx = np.zeros((1,) * (2 * nsp), dtype=np.intp)
    step = 1
    for a in reversed(range(nsp)):
        k = np.arange(kernel[a]) * dilation[a]
        o = np.arange(out_shape[a]) * stride[a]
        shape_k = [1] * (2 * nsp)
        shape_k[a] = kernel[a]
        shape_o = [1] * (2 * nsp)
        shape_o[nsp + a] = out_shape[a]
        idx = idx + (k.reshape(shape_k) + o.reshape(shape_o)) * step
        step *= padded[a]
    plane = step
    idx = idx.reshape(1, int(np.prod(kernel, dtype=np.int64)), -1)
    idx = idx + (np.arange(channels, dtype=np.intp) * plane).reshape(-1, 1, 1)
    return idx.reshape(channels * idx.shape[1], -1)


def im2col_nd(x, kernel, pad, stride, dilation, index=None):
    """Column buffer of one N-D image ``x`` of shape ``(C, *in_spatial)`` (any number of spatial axes).

    ``index`` may be a precomputed :func:`nd_gather_index` for this geometry.
    """
    if index is None:
        index = nd_gather_index(x.shape[0], x.shape[1:], kernel, pad, stride, dilation)
    xp = np.pad(x, [(0, 0)] + [(p, p) for p in pad]) if any(pad) else x
    return np.ascontiguousarray(xp).ravel()[index]


def col2im_nd(col, kernel, pad, stride, dilation, x, index=None):
    """Scatter-add ``col`` into the N-D image ``x`` of shape ``(C, *in_spatial)`` (not zeroed here)."""
    C, in_shape = x.shape[0], x.shape[1:]
    if index is None:
        index = nd_gather_index(C, in_shape, kernel, pad, stride, dilation)
    padded = (C,) + tuple(i + 2 * p for i, p in zip(in_shape, pad))
    acc = np.bincount(index.ravel(), weights=col.ravel(), minlength=int(np.prod(padded)))
    acc = acc.reshape(padded)
    inner = (slice(None),) + tuple(slice(p, p + i) for p, i in zip(pad, in_shape))
    x += acc[inner].astype(x.dtype, copy=False)
    return x


# ---- loop reference ----------------------------------------------------------------------------------------

def im2col_reference(x, kernel, pad, stride, dilation):
    """Plain-loop im2col of ``x`` (C, *in_spatial); the definition in the module docstring, verbatim."""
    C, in_shape = x.shape[0], x.shape[1:]
    out_shape = conv_out_shape(in_shape, kernel, pad, stride, dilation)
    offsets = list(itertools.product(*[range(k) for k in kernel]))
    positions = list(itertools.product(*[range(o) for o in out_shape]))
    col = np.zeros((C * len(offsets), len(positions)), dtype=x.dtype)
    for c in range(C):
        for ki, k in enumerate(offsets):
            for q, o in enumerate(positions):
                pos = tuple(oa * s - p + ka * d for oa, ka, s, p, d in zip(o, k, stride, pad, dilation))
                if all(0 <= v < n for v, n in zip(pos, in_shape)):
                    col[c * len(offsets) + ki, q] = x[(c,) + pos]
    return col
