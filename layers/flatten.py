"""Flatten: merge the axes ``axis .. end_axis`` (defaults 1 and -1) into one.

For a bottom of shape (d_0, ..., d_{n-1}) the top is
``(d_0, ..., d_{a-1}, d_a * ... * d_e, d_{e+1}, ..., d_{n-1})``. Forward: the top's data is a view of the
bottom's data (no copy). Backward: ``dE/dx = dE/dy`` reshaped (copied into the bottom's diff).
"""
import numpy as np

from crfrnn_np.layer import Layer, register_layer


@register_layer("Flatten")
class FlattenLayer(Layer):
    """Reshape view merging a range of axes."""

    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("does not allow in-place computation")
        p = self.layer_param.flatten_param
        b = bottom[0]
        try:
            start = b.canonical_axis(int(p.axis))
            end = b.canonical_axis(int(p.end_axis))
        except Exception as exc:
            raise self.shape_error(str(exc), field="flatten_param") from None
        if end < start:
            raise self.shape_error("end_axis %d comes before axis %d for bottom '%s' of shape %s"
                                   % (p.end_axis, p.axis, b.name, b.shape_string()), field="flatten_param")
        shape = list(b.shape[:start]) + [b.count_range(start, end + 1)] + list(b.shape[end + 1:])
        top[0].reshape(shape)

    def forward_cpu(self, bottom, top):
        top[0].data = bottom[0].data.reshape(top[0].shape)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            np.copyto(bottom[0].diff, top[0].diff.reshape(bottom[0].shape))
