"""Pooling: MAX and AVE over 2-D windows (Caffe's ``pooling_layer``).

Shapes (4-D only)::

    bottom (N, C, H, W)  ->  top (N, C, PH, PW)   [+ optional top[1] = MAX mask, same shape, float; in float32
                                                   only for H*W <= 2^24 + 1, the indices it holds exactly]
    CEIL (default):  PH = ceil((H + 2*pad_h - kernel_h) / stride_h) + 1      FLOOR: floor(...) + 1
    with padding only: if (PH - 1)*stride_h >= H + pad_h, PH -= 1  (the last window starts inside the
    image or the top/left padding); the same for W.

Window of output ``(ph, pw)``: ``hstart = ph*stride_h - pad_h``, likewise ``wstart``.

MAX
    Window clipped to the image; the value starts at -FLT_MAX and is replaced only by a STRICTLY greater
    element, scanning rows then columns, so ties go to the first element in row-major order. The mask holds
    that element's flat index ``h*W + w`` in its (n, c) plane. Backward: ``dx`` (zeroed) at the masked index
    ``+= dy``; windows that share their maximum ADD.
AVE
    ``pool_size = (min(hstart+kh, H+pad_h) - hstart) * (min(wstart+kw, W+pad_w) - wstart)`` is counted before
    clipping to the image, so padding cells count but the part of a CEIL overhang beyond the padding does not;
    ``y = sum(x in the window, clipped to the image) / pool_size``. Backward: every element of the clipped
    window receives ``dy / pool_size``.
STOCHASTIC
    Not implemented on CPU, as in Caffe; a net that uses it raises :class:`crfrnn_np.NetError` at set-up.

``global_pooling: true`` takes the whole H x W plane as the window (pad 0, stride 1).
"""
import math

import numba
import numpy as np

from ..layer import Layer, register_layer
from ..kernel import cpu_kernel
from ..threads import items_per_thread, parallel_for

#: Caffe's initial value of a MAX window (``-FLT_MAX``), also in float64.
NEG_FLT_MAX = -float(np.finfo(np.float32).max)
#: Largest integer up to which float32 holds every integer exactly (24-bit significand): the largest plane
#: index a float32 mask top can carry (Caffe stores it rounded, and its backward then routes to the wrong
#: element; here such a net is refused at reshape).
MASK_FLOAT32_EXACT = 2**24


# Window arithmetic of one axis, scalar helpers shared by the host kernels below and the device kernels of
# pool_cuda.py (numba compiles them for the CUDA target when a kernel calls them).

@numba.njit(cache=True, inline="always")
def ave_window(o, stride, pad, kernel, size):
    """AVE pooling's window of output ``o`` along one axis: ``(start, end)``, start = o*stride - pad (negative
    in the padding), end = min(start + kernel, size + pad). The pool size counts ``end - start`` (padding
    included); the sum reads ``max(start, 0) .. min(end, size) - 1``."""
    start = o * stride - pad
    return start, min(start + kernel, size + pad)


@numba.njit(cache=True, inline="always")
def covering_outputs(i, pad, kernel, stride, outputs):
    """The outputs ``first .. end - 1`` along one axis whose unclipped window covers input position ``i``:
    ``o*stride - pad <= i < o*stride - pad + kernel``, and ``o < outputs``."""
    first = 0 if i + pad < kernel else (i + pad - kernel) // stride + 1
    return first, min((i + pad) // stride + 1, outputs)


# Kernels work on one (n, c) plane; a range kernel runs a piece of the planes and crfrnn_np.threads.parallel_for
# spreads the pieces over threads (each thread gets at least crfrnn_np.config.PARALLEL_MIN_WORK elements).

@numba.njit(cache=True)
def _max_forward_plane(x, p, kh, kw, sh, sw, ph, pw, y, mask):
    H, W = x.shape[1], x.shape[2]
    PH, PW = y.shape[1], y.shape[2]
    for oy in range(PH):
        hstart = oy * sh - ph
        hend = min(hstart + kh, H)
        hstart = max(hstart, 0)
        for ox in range(PW):
            wstart = ox * sw - pw
            wend = min(wstart + kw, W)
            wstart = max(wstart, 0)
            best = NEG_FLT_MAX
            idx = -1
            for h in range(hstart, hend):
                for w in range(wstart, wend):
                    v = x[p, h, w]
                    if v > best:
                        best = v
                        idx = h * W + w
            y[p, oy, ox] = best
            mask[p, oy, ox] = idx


@numba.njit(cache=True)
def _max_backward_plane(dy, p, mask, dx):
    W = dx.shape[2]
    dx[p] = 0
    for oy in range(dy.shape[1]):
        for ox in range(dy.shape[2]):
            idx = mask[p, oy, ox]
            if idx >= 0:
                dx[p, idx // W, idx % W] += dy[p, oy, ox]


@numba.njit(cache=True)
def _ave_forward_plane(x, p, kh, kw, sh, sw, ph, pw, y):
    H, W = x.shape[1], x.shape[2]
    for oy in range(y.shape[1]):
        hstart, hend = ave_window(oy, sh, ph, kh, H)
        for ox in range(y.shape[2]):
            wstart, wend = ave_window(ox, sw, pw, kw, W)
            pool_size = (hend - hstart) * (wend - wstart)
            s = 0.0
            for h in range(max(hstart, 0), min(hend, H)):
                for w in range(max(wstart, 0), min(wend, W)):
                    s += x[p, h, w]
            y[p, oy, ox] = s / pool_size


@numba.njit(cache=True)
def _ave_backward_plane(dy, p, kh, kw, sh, sw, ph, pw, dx):
    H, W = dx.shape[1], dx.shape[2]
    dx[p] = 0
    for oy in range(dy.shape[1]):
        hstart, hend = ave_window(oy, sh, ph, kh, H)
        for ox in range(dy.shape[2]):
            wstart, wend = ave_window(ox, sw, pw, kw, W)
            g = dy[p, oy, ox] / ((hend - hstart) * (wend - wstart))
            for h in range(max(hstart, 0), min(hend, H)):
                for w in range(max(wstart, 0), min(wend, W)):
                    dx[p, h, w] += g


@cpu_kernel
def _max_forward(x, kh, kw, sh, sw, ph, pw, y, mask, lo, hi):
    for p in range(lo, hi):
        _max_forward_plane(x, p, kh, kw, sh, sw, ph, pw, y, mask)


@cpu_kernel
def _max_backward(dy, mask, dx, lo, hi):
    for p in range(lo, hi):
        _max_backward_plane(dy, p, mask, dx)


@cpu_kernel
def _ave_forward(x, kh, kw, sh, sw, ph, pw, y, lo, hi):
    for p in range(lo, hi):
        _ave_forward_plane(x, p, kh, kw, sh, sw, ph, pw, y)


@cpu_kernel
def _ave_backward(dy, kh, kw, sh, sw, ph, pw, dx, lo, hi):
    for p in range(lo, hi):
        _ave_backward_plane(dy, p, kh, kw, sh, sw, ph, pw, dx)


def pooled_size(size, kernel, pad, stride, ceil_mode=True):
    """Caffe's pooled output size along one axis (see the module docstring)."""
    q = float(np.float32(size + 2 * pad - kernel) / np.float32(stride))
    out = (math.ceil(q) if ceil_mode else math.floor(q)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@register_layer("Pooling")
class PoolingLayer(Layer):
    """Caffe's Pooling layer (MAX, AVE; see the module docstring)."""

    exact_num_bottom = 1
    min_num_top = 1
    max_num_top = 2

    def layer_setup(self, bottom, top):
        pp = self.layer_param.pooling_param
        f = "pooling_param"
        self.method = pp.pool
        self.differentiable_at_ties = self.method != "MAX"
        self.global_pooling = bool(pp.global_pooling)
        self.ceil_mode = pp.round_mode != "FLOOR"
        if self.method != "MAX" and len(top) > 1:
            raise self.error("only MAX pooling can have a second (mask) top, %s has %d tops"
                             % (self.method, len(top)), field=f)
        if self.global_pooling:
            if pp.has("kernel_size") or pp.has("kernel_h") or pp.has("kernel_w"):
                raise self.error("with global_pooling: true the kernel size cannot be given", field=f)
        else:
            if pp.has("kernel_size") == (pp.has("kernel_h") and pp.has("kernel_w")):
                if pp.has("kernel_size"):
                    raise self.error("give kernel_size OR kernel_h and kernel_w, not both", field=f)
                raise self.error("needs kernel_size, or both kernel_h and kernel_w (non-square kernels)", field=f)
        for base in ("pad", "stride"):
            hw = pp.has(base + "_h"), pp.has(base + "_w")
            if any(hw) and (pp.has(base) or not all(hw)):
                raise self.error("give %s, OR both %s_h and %s_w" % (base, base, base), field=f)
        if pp.has("kernel_size"):
            self.kernel = (int(pp.kernel_size),) * 2
        elif not self.global_pooling:
            self.kernel = (int(pp.kernel_h), int(pp.kernel_w))
        if not self.global_pooling and min(self.kernel) <= 0:
            raise self.error("kernel dimensions must be positive, got %dx%d" % self.kernel, field=f)
        self.pad = ((int(pp.pad_h), int(pp.pad_w)) if pp.has("pad_h") else (int(pp.pad),) * 2)
        self.stride = ((int(pp.stride_h), int(pp.stride_w)) if pp.has("stride_h") else (int(pp.stride),) * 2)
        if min(self.stride) <= 0:
            raise self.error("stride must be positive, got %dx%d" % self.stride, field=f)
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.error("with global_pooling: true only pad 0 and stride 1 are allowed", field=f)
        if self.pad != (0, 0):
            if self.method not in ("MAX", "AVE"):
                raise self.error("padding is implemented only for MAX and AVE pooling, not %s" % self.method,
                                 field=f)
            if not self.global_pooling and (self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]):
                raise self.error("pad (%dx%d) must be smaller than the kernel (%dx%d)"
                                 % (self.pad + self.kernel), field=f)
        if self.method == "STOCHASTIC":
            raise self.error("STOCHASTIC pooling is not implemented on CPU, as in Caffe", field=f)

    def reshape(self, bottom, top):
        b = bottom[0]
        if b.num_axes != 4:
            raise self.shape_error("bottom '%s' has shape %s; pooling needs 4 axes (num, channels, height, "
                                   "width)" % (b.name, b.shape_string()))
        N, C, H, W = b.shape
        if self.global_pooling:
            self.kernel = (H, W)
        out = []
        for size, k, p, s, axis in zip((H, W), self.kernel, self.pad, self.stride, ("height", "width")):
            o = pooled_size(size, k, p, s, self.ceil_mode)
            if o <= 0:
                raise self.shape_error("bottom '%s' of shape %s is too small for a %dx%d kernel with pad %dx%d "
                                       "(pooled %s %d)" % ((b.name, b.shape_string()) + self.kernel + self.pad
                                                           + (axis, o)))
            out.append(o)
        self.pooled = tuple(out)
        if len(top) > 1 and self.dtype == np.float32 and H * W - 1 > MASK_FLOAT32_EXACT:
            raise self.shape_error("the mask top '%s' is float32, which holds the window maxima's plane indices "
                                   "(up to H*W - 1 = %d for bottom '%s' %s) exactly only up to 2^24: use float64 "
                                   "or leave out the mask top" % (top[1].name, H * W - 1, b.name, b.shape_string()))
        for t in top:
            t.reshape((N, C) + self.pooled)
        if self.method == "MAX":
            self._mask = np.empty((N * C,) + self.pooled, dtype=np.int64)

    def _planes(self, a, shape):
        return a.reshape((-1,) + tuple(shape))

    def forward_cpu(self, bottom, top):
        b = bottom[0]
        x = self._planes(b.data, b.shape[2:])
        y = self._planes(top[0].data, self.pooled)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        pieces = items_per_thread(x.shape[0], x.size)
        if self.method == "MAX":
            parallel_for(_max_forward, x.shape[0], x, kh, kw, sh, sw, ph, pw, y, self._mask, grain=pieces)
            if len(top) > 1:
                top[1].data[...] = self._mask.reshape(top[1].shape)
        elif self.method == "AVE":
            parallel_for(_ave_forward, x.shape[0], x, kh, kw, sh, sw, ph, pw, y, grain=pieces)
        else:
            raise self.error("STOCHASTIC pooling is not implemented on CPU, as in Caffe")

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        b = bottom[0]
        dx = self._planes(b.diff, b.shape[2:])
        dy = self._planes(top[0].diff, self.pooled)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        pieces = items_per_thread(dx.shape[0], dx.size)
        if self.method == "MAX":
            if len(top) > 1:
                mask = self._planes(top[1].data, self.pooled).astype(np.int64)
            else:
                mask = self._mask
            parallel_for(_max_backward, dx.shape[0], dy, mask, dx, grain=pieces)
        else:
            parallel_for(_ave_backward, dx.shape[0], dy, kh, kw, sh, sw, ph, pw, dx, grain=pieces)

    # -- device (pool_cuda.py) ------------------------------------------------------------------------------
    def _geo(self):
        return tuple(int(v) for v in self.kernel + self.stride + self.pad)

    def forward_gpu(self, bottom, top):
        from .pool_cuda import ave_forward, max_forward
        b = bottom[0]
        if not b.count:
            return
        x = self._planes(b.gpu_data(), b.shape[2:])
        y = self._planes(top[0].mutable_gpu_data(), self.pooled)
        if self.method == "AVE":
            return ave_forward(x, self._geo(), y)
        if getattr(self, "_device_mask", None) is None or self._device_mask.shape != y.shape:
            from crfrnn_np import cuda_ops
            self._device_mask = cuda_ops.empty(y.shape, np.int64)
        top_mask = self._planes(top[1].mutable_gpu_data(), self.pooled) if len(top) > 1 else None
        max_forward(x, self._geo(), y, self._device_mask, top_mask)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        from .pool_cuda import ave_backward, max_backward
        b = bottom[0]
        if not b.count:
            return
        dx = self._planes(b.mutable_gpu_diff(), b.shape[2:])
        dy = self._planes(top[0].gpu_diff(), self.pooled)
        if self.method == "MAX":
            # the mask top when there is one (the host reads it too), else the forward's own
            mask = self._planes(top[1].gpu_data(), self.pooled) if len(top) > 1 else self._device_mask
            max_backward(dy, mask, self._geo(), dx)
        else:
            ave_backward(dy, self._geo(), dx)
