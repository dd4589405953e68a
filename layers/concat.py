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

    def _device_pairs(self, top_array, bottom, arrays):
        """``(top view, bottom view)`` 4-D device pairs: bottom i is the slice ``[:, :, off_i:off_i + C_i, :]``
        of the top seen as ``(1, outer, C, inner)``."""
        shape = top_array.shape
        outer = int(np.prod(shape[:self.axis], dtype=np.int64))
        inner = int(np.prod(shape[self.axis + 1:], dtype=np.int64))
        whole = top_array.reshape(1, outer, shape[self.axis], inner)
        offset = 0
        for b, array in zip(bottom, arrays):
            size = b.shape[self.axis]
            if array is not None:
                yield whole[:, :, offset:offset + size, :], array.reshape(1, outer, size, inner)
            offset += size

    def forward_gpu(self, bottom, top):
        from .copy_cuda import copy_block
        for top_view, x in self._device_pairs(top[0].mutable_gpu_data(), bottom,
                                              [b.gpu_data() for b in bottom]):
            copy_block(x, top_view)

    def backward_gpu(self, top, propagate_down, bottom):
        from .copy_cuda import copy_block
        arrays = [b.mutable_gpu_diff() if down else None for b, down in zip(bottom, propagate_down)]
        for top_view, dx in self._device_pairs(top[0].gpu_diff(), bottom, arrays):
            copy_block(top_view, dx)
