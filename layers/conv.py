"""Convolution: ``top = W * bottom + b`` by im2col + GEMM (Caffe's ``base_conv_layer``/``conv_layer``).

Shapes (``axis`` = channel axis, default 1; dims before it are batch-like, dims after it spatial)::

    bottom  (N..., C, *in)           weight  (O, C/G, *k)          bias (O,)
    top     (N..., O, *out)          out_i = (in_i + 2*pad_i - (dilation_i*(k_i - 1) + 1)) // stride_i + 1

Per image and group ``g`` (``K_g = (C/G)*prod(k)``, ``P = prod(out)``)::

    forward           Y_g[O/G, P]   = W_g[O/G, K_g] @ im2col(x)_g[K_g, P]          (+ b[o], band by band)
    backward, data    dx            = col2im( W_g^T @ dY_g )                       (overwritten)
    backward, weight  dW_g         += dY_g @ im2col(x)_g^T                          (accumulated)
    backward, bias    db[o]        += sum over images and positions of dY[o]       (accumulated)

The column buffer is built for bands of output rows so that it stays below
:data:`crfrnn_np.config.COL_BUFFER_BYTES` (a 64-channel 3x3 convolution of a 698x698 map would need
1.1 GB at once in float32). 1x1 kernels with stride 1 and no padding use the image itself as the column buffer.

:class:`ConvGeometry` holds these three products for one image; Deconvolution (``deconv.py``) uses the same
object with the roles swapped (its forward is ``backward_data``, its data gradient is ``forward``).
"""
import numpy as np

from ..errors import ShapeError
from ..fillers import fill
from ..config import COL_BUFFER_BYTES
from ..layer import Layer, register_layer
from .im2col import (col2im_2d, col2im_nd, conv_out_shape, im2col_2d, im2col_nd,
                     nd_gather_index)


_WORKSPACE = {}


def _workspace(size, dtype):
    """A scratch array of ``size`` elements shared by every convolution of this process (one per dtype).

    Layers run one at a time, so one column buffer of at most ``COL_BUFFER_BYTES`` serves them all (as a
    per-layer buffer would cost 64 MB for each large convolution of a net).
    """
    dtype = np.dtype(dtype)
    buf = _WORKSPACE.get(dtype)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1), dtype=dtype)
        _WORKSPACE[dtype] = buf
    return buf[:size]


class ConvGeometry:
    """im2col geometry and GEMMs of one image, in the convolution's own view.

    Parameters
    ----------
    in_channels : int
        Channels of the image im2col reads (``C``).
    in_shape : tuple of int
        Spatial shape of that image.
    out_channels : int
        Channels the GEMM produces (``O``).
    kernel, pad, stride, dilation : tuple of int
        One value per spatial axis.
    group : int
    dtype : numpy dtype
    force_nd : bool
        Use the N-D NumPy im2col even for 2-D (Caffe's ``force_nd_im2col``).

    Attributes
    ----------
    out_shape : tuple of int
        Spatial shape of the convolution output.
    """

    def __init__(self, in_channels, in_shape, out_channels, kernel, pad, stride, dilation, group, dtype,
                 force_nd=False):
        self.C, self.O, self.G = in_channels, out_channels, group
        self.in_shape = tuple(in_shape)
        self.out_shape = conv_out_shape(in_shape, kernel, pad, stride, dilation)
        self.dtype = np.dtype(dtype)
        nsp = len(in_shape)
        # 0-D and 1-D problems are 2-D problems with leading singleton spatial axes.
        lift = max(0, 2 - nsp)
        self.kernel = (1,) * lift + tuple(kernel)
        self.pad = (0,) * lift + tuple(pad)
        self.stride = (1,) * lift + tuple(stride)
        self.dilation = (1,) * lift + tuple(dilation)
        self.in2 = (1,) * lift + self.in_shape
        self.out2 = (1,) * lift + self.out_shape
        self.nd = force_nd or len(self.in2) > 2
        self.is_1x1 = (all(k == 1 for k in self.kernel) and all(s == 1 for s in self.stride)
                       and all(p == 0 for p in self.pad))
        self.K = in_channels * int(np.prod(self.kernel, dtype=np.int64))
        self.Kg = self.K // group
        self.Og = out_channels // group
        self.P = int(np.prod(self.out2, dtype=np.int64))
        if self.nd or self.is_1x1:
            # no column buffer (1x1: the image itself), so one band whatever the size
            self.bands = [(0, self.out2[0])]
            self._index = None if self.is_1x1 else nd_gather_index(
                self.C, self.in2, self.kernel, self.pad, self.stride, self.dilation)
        else:
            row_bytes = max(1, self.K * self.out2[1] * self.dtype.itemsize)
            rows = max(1, min(self.out2[0], COL_BUFFER_BYTES // row_bytes))
            self.bands = [(r, min(r + rows, self.out2[0])) for r in range(0, self.out2[0], rows)]

    # -- column buffers --------------------------------------------------------------------------------
    def _col_buffer(self, row0, row1):
        n = (row1 - row0) * (self.P // self.out2[0])
        return _workspace(self.K * n, self.dtype).reshape(self.K, n)

    def _im2col(self, x, row0, row1):
        """Column buffer (K, band positions) of image ``x`` (C, *in)."""
        if self.is_1x1:
            return x.reshape(self.K, self.P)
        if self.nd:
            return im2col_nd(x.reshape((self.C,) + self.in2), self.kernel, self.pad, self.stride,
                             self.dilation, self._index)
        col = self._col_buffer(row0, row1)
        return im2col_2d(x.reshape((self.C,) + self.in2), self.kernel, self.pad, self.stride,
                         self.dilation, self.out2, (row0, row1), col)

    def _columns(self, row0, row1):
        w = self.P // self.out2[0] if self.out2[0] else 0
        return slice(row0 * w, row1 * w)

    # -- the three products -----------------------------------------------------------------------------
    def forward(self, x, w2, y, bias=None):
        """``y = W @ im2col(x)`` per group (``+ bias[o]`` on every position when given).

        The bias is added band by band, right after the band's GEMM, while that band of ``y`` is still in
        cache.

        Parameters
        ----------
        x : ndarray, shape (C, *in)
        w2 : ndarray, shape (O, K/G)
        y : ndarray, shape (O, *out), overwritten (C-contiguous)
        bias : ndarray, shape (O,), optional
        """
        y2 = y.reshape(self.O, self.P)
        b2 = None if bias is None else bias.reshape(self.O, 1)
        for row0, row1 in self.bands:
            col = self._im2col(x, row0, row1)
            cols = self._columns(row0, row1)
            for g in range(self.G):
                np.matmul(w2[g * self.Og:(g + 1) * self.Og], col[g * self.Kg:(g + 1) * self.Kg],
                          out=y2[g * self.Og:(g + 1) * self.Og, cols])
            if b2 is not None:
                y2[:, cols] += b2

    def backward_data(self, dy, w2, dx):
        """``dx = col2im(W^T @ dy)`` per group (``dx`` overwritten).

        Parameters
        ----------
        dy : ndarray, shape (O, *out)
        w2 : ndarray, shape (O, K/G)
        dx : ndarray, shape (C, *in)
        """
        dy2 = dy.reshape(self.O, self.P)
        if self.is_1x1:
            dx2 = dx.reshape(self.K, self.P)
            for g in range(self.G):
                np.matmul(w2[g * self.Og:(g + 1) * self.Og].T, dy2[g * self.Og:(g + 1) * self.Og],
                          out=dx2[g * self.Kg:(g + 1) * self.Kg])
            return
        dx[...] = 0
        img = dx.reshape((self.C,) + self.in2)
        for row0, row1 in self.bands:
            cols = self._columns(row0, row1)
            if self.nd:
                col = np.empty((self.K, self.P), dtype=self.dtype)
            else:
                col = self._col_buffer(row0, row1)
            for g in range(self.G):
                np.matmul(w2[g * self.Og:(g + 1) * self.Og].T, dy2[g * self.Og:(g + 1) * self.Og, cols],
                          out=col[g * self.Kg:(g + 1) * self.Kg])
            if self.nd:
                col2im_nd(col, self.kernel, self.pad, self.stride, self.dilation, img, self._index)
            else:
                col2im_2d(col, self.kernel, self.pad, self.stride, self.dilation, self.out2, img,
                          (row0, row1))

    def backward_weight(self, x, dy, dw2):
        """``dW += dy @ im2col(x)^T`` per group.

        Parameters
        ----------
        x : ndarray, shape (C, *in)
        dy : ndarray, shape (O, *out)
        dw2 : ndarray, shape (O, K/G), accumulated
        """
        dy2 = dy.reshape(self.O, self.P)
        for row0, row1 in self.bands:
            col = self._im2col(x, row0, row1)
            cols = self._columns(row0, row1)
            for g in range(self.G):
                # (col_g @ dy_g^T)^T: OpenBLAS is several times faster with the long axis inside this way
                dw2[g * self.Og:(g + 1) * self.Og] += (col[g * self.Kg:(g + 1) * self.Kg]
                                                      @ dy2[g * self.Og:(g + 1) * self.Og, cols].T).T


def _repeated(layer, cp, name, num_spatial, default):
    """Caffe's rule for ``pad``/``kernel_size``/``stride``/``dilation``: 0, 1 or one value per spatial axis."""
    values = [int(v) for v in getattr(cp, name)]
    if len(values) == 0:
        if default is None:
            if num_spatial == 0:
                return ()
            raise layer.error("convolution_param needs kernel_size or kernel_h and kernel_w",
                              field="convolution_param")
        return (default,) * num_spatial
    if len(values) == 1:
        return (values[0],) * num_spatial
    if len(values) != num_spatial:
        raise layer.error("%s must be given once or once per spatial axis (given %d times; %d spatial axes)"
                          % (name, len(values), num_spatial), field="convolution_param")
    return tuple(values)


def _hw(layer, cp, base, num_spatial, default):
    """``kernel``/``pad``/``stride`` from the ``<base>_h``/``<base>_w`` form, or from the repeated form."""
    repeated = "kernel_size" if base == "kernel" else base
    if cp.has(base + "_h") or cp.has(base + "_w"):
        if num_spatial != 2:
            raise layer.error("%s_h and %s_w can only be used for 2-D convolution (%d spatial axes)"
                              % (base, base, num_spatial), field="convolution_param")
        if getattr(cp, repeated):
            raise layer.error("give either %s or %s_h/%s_w, not both" % (repeated, base, base),
                              field="convolution_param")
        return (int(getattr(cp, base + "_h")), int(getattr(cp, base + "_w")))
    return _repeated(layer, cp, repeated, num_spatial, default)


class BaseConvolution(Layer):
    """Parameter handling, shapes and blobs shared by Convolution and Deconvolution.

    Subclasses set :attr:`reverse` (False: im2col reads the bottom; True: im2col reads the top) and implement
    ``forward_cpu``/``backward_cpu`` with :class:`ConvGeometry`.
    """

    min_num_bottom = 1
    min_num_top = 1
    equal_num_bottom_top = True
    reverse = False

    def layer_setup(self, bottom, top):
        cp = self.layer_param.convolution_param
        self.force_nd = bool(cp.force_nd_im2col)
        b0 = bottom[0]
        try:
            self.channel_axis = b0.canonical_axis(int(cp.axis))
        except ShapeError as exc:
            raise self.shape_error("axis %d: %s" % (cp.axis, exc), field="convolution_param") from None
        self.num_spatial = b0.num_axes - self.channel_axis - 1
        self.kernel = _hw(self, cp, "kernel", self.num_spatial, None)
        self.pad = _hw(self, cp, "pad", self.num_spatial, 0)
        self.stride = _hw(self, cp, "stride", self.num_spatial, 1)
        self.dilation = _repeated(self, cp, "dilation", self.num_spatial, 1)
        for name, vals in (("kernel", self.kernel), ("stride", self.stride), ("dilation", self.dilation)):
            if any(v <= 0 for v in vals):
                raise self.error("%s dimensions must be nonzero, got %s" % (name, list(vals)),
                                 field="convolution_param")
        self.channels = b0.shape[self.channel_axis]
        self.num_output = int(cp.num_output)
        self.group = int(cp.group)
        if self.num_output <= 0:
            raise self.error("num_output must be positive, got %d" % self.num_output, field="convolution_param")
        if self.group <= 0:
            raise self.error("group must be positive, got %d" % self.group, field="convolution_param")
        if self.channels % self.group:
            raise self.shape_error("bottom '%s' has %d channels, not a multiple of group %d"
                                   % (b0.name, self.channels, self.group), field="convolution_param")
        if self.num_output % self.group:
            raise self.error("num_output %d is not a multiple of group %d" % (self.num_output, self.group),
                             field="convolution_param")
        # the conv view: im2col runs over conv_in channels, the GEMM produces conv_out channels
        if self.reverse:
            self.conv_in, self.conv_out = self.num_output, self.channels
        else:
            self.conv_in, self.conv_out = self.channels, self.num_output
        self.bias_term = bool(cp.bias_term)
        wshape = (self.conv_out, self.conv_in // self.group) + tuple(self.kernel)
        self.blobs = [self.make_blob(wshape, self.name + "/weight")]
        fill(self.blobs[0].data, cp.weight_filler, where="layer '%s': weight_filler: " % self.name)
        if self.bias_term:
            self.blobs.append(self.make_blob((self.num_output,), self.name + "/bias"))
            fill(self.blobs[1].data, cp.bias_filler, where="layer '%s': bias_filler: " % self.name)
        self.param_propagate_down = [True] * len(self.blobs)
        self._geometry = None

    def _describe(self):
        return ("kernel %s, stride %s, pad %s, dilation %s"
                % ("x".join(map(str, self.kernel)), "x".join(map(str, self.stride)),
                   "x".join(map(str, self.pad)), "x".join(map(str, self.dilation))))

    def output_spatial(self, in_shape, bottom):
        """Spatial shape of the top for ``bottom`` (a Blob) of spatial shape ``in_shape``."""
        raise NotImplementedError

    def reshape(self, bottom, top):
        b0 = bottom[0]
        if b0.num_axes != self.channel_axis + 1 + self.num_spatial:
            raise self.shape_error("bottom '%s' has shape %s; the number of axes may not change (expected %d)"
                                   % (b0.name, b0.shape_string(), self.channel_axis + 1 + self.num_spatial))
        if b0.shape[self.channel_axis] != self.channels:
            raise self.shape_error("bottom '%s' has shape %s: %d channels on axis %d, the weights need %d"
                                   % (b0.name, b0.shape_string(), b0.shape[self.channel_axis],
                                      self.channel_axis, self.channels))
        for b in bottom[1:]:
            if b.shape != b0.shape:
                raise self.shape_error("all bottoms must have one shape: '%s' is %s, '%s' is %s"
                                       % (b0.name, b0.shape_string(), b.name, b.shape_string()))
        in_sp = b0.shape[self.channel_axis + 1:]
        out_sp = self.output_spatial(in_sp, b0)
        self.num = b0.count_range(0, self.channel_axis)
        top_shape = b0.shape[:self.channel_axis] + (self.num_output,) + tuple(out_sp)
        for t in top:
            t.reshape(top_shape)
        if self.reverse:
            key = (self.conv_in, tuple(out_sp))
        else:
            key = (self.conv_in, tuple(in_sp))
        if self._geometry is None or self._geometry_key != key:
            self._geometry = ConvGeometry(self.conv_in, key[1], self.conv_out, self.kernel, self.pad,
                                          self.stride, self.dilation, self.group, self.dtype, self.force_nd)
            self._geometry_key = key
        self.in_spatial, self.out_spatial = tuple(in_sp), tuple(out_sp)

    def _weight2d(self, diff=False):
        w = self.blobs[0].diff if diff else self.blobs[0].data
        return w.reshape(self.conv_out, -1)

    def _images(self, blob, channels, spatial, diff=False):
        a = blob.diff if diff else blob.data
        return a.reshape((self.num, channels) + tuple(spatial))

    def _add_bias(self, top):
        if self.bias_term:
            y = top.data.reshape(self.num, self.num_output, -1)
            y += self.blobs[1].data.reshape(1, -1, 1)

    def _bias_backward(self, top):
        if self.bias_term and self.param_propagate_down[1]:
            dy = top.diff.reshape(self.num, self.num_output, -1)
            self.blobs[1].diff[...] += dy.sum(axis=(0, 2))

    # -- device (conv_cuda.py): the products of ConvGeometry as implicit GEMMs -----------------------------
    def _device_ok(self):
        from .conv_cuda import supported
        return supported(self._geometry)

    def _device_bias_backward(self, top):
        if self.bias_term and self.param_propagate_down[1]:
            from .gemm_cuda import channel_sum
            channel_sum(top.gpu_diff().reshape(self.num, self.num_output, -1), self.blobs[1].mutable_gpu_diff())

    # Deconvolution (``reverse``) swaps the convolution's forward and data gradient, and the roles of image and
    # output in the weight gradient, as its host path does
    def forward_gpu(self, bottom, top):
        if not self._device_ok():                # 3-D and higher: the host's N-D im2col
            return self.forward_cpu(bottom, top)
        from . import conv_cuda
        product = conv_cuda.backward_data if self.reverse else conv_cuda.forward
        w = self.blobs[0].gpu_data()
        bias = self.blobs[1].gpu_data() if self.bias_term else None
        for b, t in zip(bottom, top):
            product(self._geometry, self.num, b.gpu_data(), w, t.mutable_gpu_data(), bias)

    def backward_gpu(self, top, propagate_down, bottom):
        if not self._device_ok():
            return self.backward_cpu(top, propagate_down, bottom)
        from . import conv_cuda
        data_gradient = conv_cuda.forward if self.reverse else conv_cuda.backward_data
        for i, (b, t) in enumerate(zip(bottom, top)):
            self._device_bias_backward(t)
            if self.param_propagate_down[0]:
                image, output = (t.gpu_diff(), b.gpu_data()) if self.reverse else (b.gpu_data(), t.gpu_diff())
                conv_cuda.backward_weight(self._geometry, self.num, image, output, self.blobs[0].mutable_gpu_diff())
            if propagate_down[i]:
                data_gradient(self._geometry, self.num, t.gpu_diff(), self.blobs[0].gpu_data(), b.mutable_gpu_diff())


@register_layer("Convolution")
class ConvolutionLayer(BaseConvolution):
    """Caffe's Convolution layer (see the module docstring for the maths and shapes)."""

    reverse = False

    def output_spatial(self, in_shape, bottom):
        out = []
        for i, k, p, s, d in zip(in_shape, self.kernel, self.pad, self.stride, self.dilation):
            extent = d * (k - 1) + 1
            if i + 2 * p < extent:
                raise self.shape_error(
                    "bottom '%s' of shape %s is smaller than the kernel (%s): padded size %d < kernel "
                    "extent %d" % (bottom.name, bottom.shape_string(), self._describe(), i + 2 * p, extent))
            out.append((i + 2 * p - extent) // s + 1)
        return tuple(out)

    def forward_cpu(self, bottom, top):
        geo, w2 = self._geometry, self._weight2d()
        for b, t in zip(bottom, top):
            x = self._images(b, self.channels, self.in_spatial)
            y = self._images(t, self.num_output, self.out_spatial)
            bias = self.blobs[1].data if self.bias_term else None
            for n in range(self.num):
                geo.forward(x[n], w2, y[n], bias)

    def backward_cpu(self, top, propagate_down, bottom):
        geo, w2 = self._geometry, self._weight2d()
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = self._images(t, self.num_output, self.out_spatial, diff=True)
            self._bias_backward(t)
            if self.param_propagate_down[0]:
                x = self._images(b, self.channels, self.in_spatial)
                dw2 = self._weight2d(diff=True)
                for n in range(self.num):
                    geo.backward_weight(x[n], dy[n], dw2)
            if propagate_down[i]:
                dx = self._images(b, self.channels, self.in_spatial, diff=True)
                for n in range(self.num):
                    geo.backward_data(dy[n], w2, dx[n])

