"""Softmax along one axis (``softmax_param.axis``, default 1, negative counts from the end).

View the bottom as ``(outer, C, inner)`` around the axis. For every (outer, inner) position::

    y_c = exp(x_c - max_k x_k) / sum_k exp(x_k - max_k x_k)

Backward (from the output, so in-place use is safe)::

    dE/dx_c = (dE/dy_c - sum_k dE/dy_k * y_k) * y_c
"""
import numpy as np

from crfrnn_np.layer import Layer, register_layer


def softmax(x, axis):
    """Max-subtracted softmax of ``x`` along ``axis`` (a new array of ``x``'s dtype)."""
    e = x - np.max(x, axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def softmax_backward(y, dy, axis):
    """``(dy - sum(dy * y, axis)) * y``: the gradient through a softmax with output ``y``."""
    return (dy - np.sum(dy * y, axis=axis, keepdims=True)) * y


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
        top[0].data[...] = softmax(bottom[0].data, self.axis)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = softmax_backward(top[0].data, top[0].diff, self.axis)
