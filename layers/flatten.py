"""Flatten: merge the axes ``axis .. end_axis`` (defaults 1 and -1) into one.

For a bottom of shape (d_0, ..., d_{n-1}) the top is
``(d_0, ..., d_{a-1}, d_a * ... * d_e, d_{e+1}, ..., d_{n-1})``. Forward: the top's data is a view of the
bottom's data (no copy). Backward: ``dE/dx = dE/dy`` reshaped (copied into the bottom's diff).
"""

from crfrnn_np.layer import register_layer

from .reshape import ViewLayer


@register_layer("Flatten")
class FlattenLayer(ViewLayer):
    """Reshape view merging a range of axes."""

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
