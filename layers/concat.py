"""Concat: join the bottoms along one axis.

``axis`` (default 1; negative counts from the end) or the legacy ``concat_dim`` (non-negative, not both).
All bottoms have the same number of axes and the same dims except along ``axis``; the top has the sum of
their sizes there. For bottoms of shape (..., C_i, ...)::

    y[..., off_i : off_i + C_i, ...] = x_i          off_i = C_0 + ... + C_{i-1}
    dE/dx_i = dE/dy[..., off_i : off_i + C_i, ...]
"""
import numpy as np

from crfrnn_np.layer import Layer, register_layer


@register_layer("Concat")
class ConcatLayer(Layer):
    """Concatenation along ``concat_param.axis``."""

    min_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.layer_param.concat_param
        if p.has("axis") and p.has("concat_dim"):
            raise self.error("give either axis or concat_dim, not both", field="concat_param")

    def reshape(self, bottom, top):
        p = self.layer_param.concat_param
        n = bottom[0].num_axes
        if p.has("concat_dim"):
            axis = int(p.concat_dim)
            if axis >= n:
                raise self.shape_error("concat_dim %d out of range for bottom '%s' of shape %s"
                                       % (axis, bottom[0].name, bottom[0].shape_string()))
        else:
            try:
                axis = bottom[0].canonical_axis(int(p.axis))
            except Exception as exc:
                raise self.shape_error(str(exc)) from None
        self.axis = axis
        shape = list(bottom[0].shape)
        for b in bottom[1:]:
            if b.num_axes != n:
                raise self.shape_error("all bottoms need the same number of axes: '%s' is %s, '%s' is %s"
                                       % (bottom[0].name, bottom[0].shape_string(), b.name, b.shape_string()))
            for i in range(n):
                if i != axis and b.shape[i] != shape[i]:
                    raise self.shape_error("bottoms differ outside the concat axis %d: '%s' is %s, '%s' is %s"
                                           % (axis, bottom[0].name, bottom[0].shape_string(),
                                              b.name, b.shape_string()))
            shape[axis] += b.shape[axis]
        top[0].reshape(shape)

    def forward_cpu(self, bottom, top):
        if len(bottom) == 1:
            np.copyto(top[0].data, bottom[0].data)
            return
        np.concatenate([b.data for b in bottom], axis=self.axis, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff
        offset = 0
        for b, down in zip(bottom, propagate_down):
            size = b.shape[self.axis]
            if down:
                index = [slice(None)] * dy.ndim
                index[self.axis] = slice(offset, offset + size)
                np.copyto(b.diff, dy[tuple(index)])
            offset += size

    def _device_view(self, blob):
        return blob.count_range(0, self.axis), blob.count_range(self.axis + 1)

    def forward_gpu(self, bottom, top):
        from .copy_cuda import concat
        outer, inner = self._device_view(top[0])
        concat([(b.gpu_data(), b.shape[self.axis]) for b in bottom], top[0].mutable_gpu_data(), outer, inner)

    def backward_gpu(self, top, propagate_down, bottom):
        from .copy_cuda import concat
        outer, inner = self._device_view(top[0])
        parts = [(b.mutable_gpu_diff() if down else None, b.shape[self.axis])
                 for b, down in zip(bottom, propagate_down)]
        concat(parts, top[0].gpu_diff(), outer, inner, to_whole=False)
