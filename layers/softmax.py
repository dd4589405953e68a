"""Softmax along one axis (``softmax_param.axis``, default 1, negative counts from the end).

View the bottom as ``(outer, C, inner)`` around the axis. For every (outer, inner) position::

    y_c = exp(x_c - max_k x_k) / sum_k exp(x_k - max_k x_k)

Backward (from the output, so in-place use is safe)::

    dE/dx_c = (dE/dy_c - sum_k dE/dy_k * y_k) * y_c

Both are computed block by block of positions (about :data:`BLOCK` elements at a time, so that the passes
of one block stay in cache), in the array's own dtype, straight into the output (which may be the input):
no temporary of the full size is made.
"""
import numpy as np

from crfrnn_np.config import SOFTMAX_NUMPY_BLOCK as BLOCK
from crfrnn_np.layer import Layer, register_layer



def _blocks(shape, axis):
    """``(outer, C, inner)`` of ``shape`` around ``axis`` and the (outer, inner) slices of each block."""
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    c = int(shape[axis])
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    step_i = max(1, min(inner, BLOCK // max(c, 1)))
    step_o = max(1, BLOCK // max(c * step_i, 1))
    slices = [(slice(o, min(o + step_o, outer)), slice(i, min(i + step_i, inner)))
              for o in range(0, outer, step_o) for i in range(0, inner, step_i)]
    return (outer, c, inner), (step_o, step_i), slices


def _planar(array, view_shape, what):
    """``array`` viewed as (outer, C, inner) without a copy (it must be C-contiguous)."""
    if not array.flags.c_contiguous:
        raise ValueError("softmax: %s must be C-contiguous to be written in place" % what)
    return array.reshape(view_shape)


def softmax(x, axis, out=None):
    """Max-subtracted softmax of ``x`` along ``axis``.

    Parameters
    ----------
    x : ndarray
    axis : int
        May be negative.
    out : ndarray, optional
        C-contiguous array of ``x``'s shape and dtype to write into (may be ``x`` itself).

    Returns
    -------
    ndarray
        ``out``, or a new array of ``x``'s dtype.
    """
    x = np.asarray(x)
    if out is None:
        out = np.empty(x.shape, x.dtype)
    axis = axis % x.ndim
    view_shape, (step_o, step_i), slices = _blocks(x.shape, axis)
    xv = np.ascontiguousarray(x).reshape(view_shape)
    yv = _planar(out, view_shape, "out")
    scratch = np.empty((step_o, 1, step_i), out.dtype)
    for so, si in slices:
        xs, ys = xv[so, :, si], yv[so, :, si]
        m = scratch[:xs.shape[0], :, :xs.shape[2]]
        np.max(xs, axis=1, keepdims=True, out=m)
        np.subtract(xs, m, out=ys)
        np.exp(ys, out=ys)
        np.sum(ys, axis=1, keepdims=True, out=m)
        np.divide(ys, m, out=ys)
    return out


def softmax_backward(y, dy, axis, out=None):
    """``(dy - sum(dy * y, axis)) * y``: the gradient through a softmax with output ``y``.

    Parameters
    ----------
    y, dy : ndarray, the same shape
        Softmax output and the gradient with respect to it.
    axis : int
    out : ndarray, optional
        C-contiguous array to write into (may be ``dy`` itself, not ``y``).

    Returns
    -------
    ndarray
        ``out``, or a new array of ``dy``'s dtype.
    """
    y, dy = np.asarray(y), np.asarray(dy)
    if out is None:
        out = np.empty(dy.shape, dy.dtype)
    axis = axis % y.ndim
    view_shape, (step_o, step_i), slices = _blocks(y.shape, axis)
    yv = np.ascontiguousarray(y).reshape(view_shape)
    dv = np.ascontiguousarray(dy).reshape(view_shape)
    ov = _planar(out, view_shape, "out")
    product = np.empty((step_o, view_shape[1], step_i), out.dtype)
    scratch = np.empty((step_o, 1, step_i), out.dtype)
    for so, si in slices:
        ys, ds, os_ = yv[so, :, si], dv[so, :, si], ov[so, :, si]
        p = product[:ys.shape[0], :, :ys.shape[2]]
        s = scratch[:ys.shape[0], :, :ys.shape[2]]
        np.multiply(ds, ys, out=p)
        np.sum(p, axis=1, keepdims=True, out=s)
        np.subtract(ds, s, out=os_)
        np.multiply(os_, ys, out=os_)
    return out


@register_layer("Softmax")
class SoftmaxLayer(Layer):
    """Softmax over ``softmax_param.axis``. Bottom and top: any shape, the same."""

    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        try:
            self.axis = bottom[0].canonical_axis(int(self.layer_param.softmax_param.axis))
        except Exception as exc:
            raise self.shape_error(str(exc), field="softmax_param") from None
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        softmax(bottom[0].data, self.axis, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            softmax_backward(top[0].data, top[0].diff, self.axis, out=bottom[0].diff)

    def _view(self, blob):
        shape = blob.shape
        outer = int(np.prod(shape[:self.axis], dtype=np.int64))
        inner = int(np.prod(shape[self.axis + 1:], dtype=np.int64))
        return outer, int(shape[self.axis]), inner

    def forward_gpu(self, bottom, top):
        from .crf_cuda import softmax as device_softmax
        device_softmax(bottom[0].gpu_data(), top[0].mutable_gpu_data(), *self._view(bottom[0]))

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            from .crf_cuda import softmax_backward as device_softmax_backward
            device_softmax_backward(top[0].gpu_data(), top[0].gpu_diff(), bottom[0].mutable_gpu_diff(),
                                    *self._view(top[0]))
