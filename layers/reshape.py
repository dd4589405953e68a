"""Reshape: change the shape of a range of axes without touching the data.

``reshape_param.shape.dim`` replaces the bottom axes ``axis .. axis + num_axes - 1`` (``axis`` default 0,
negative counts from the end with -1 meaning "after the last axis"; ``num_axes`` default -1 = all the rest).
In ``dim``: ``0`` copies the bottom dim at the same position (``axis + i``), ``-1`` (at most once) is inferred
so that the element count is unchanged; every other entry must be positive.

Forward: the top's data is a view of the bottom's data. Backward: ``dE/dx = dE/dy`` reshaped (copied).
"""
import numpy as np

from crfrnn_np.layer import Layer, register_layer


class ViewLayer(Layer):
    """Base of Reshape and Flatten: the top's data is a view of the bottom's with the shape ``reshape`` set;
    backward copies the diff back in the bottom's shape."""

    exact_num_bottom = 1
    exact_num_top = 1

    def forward_cpu(self, bottom, top):
        top[0].data = bottom[0].data.reshape(top[0].shape)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            np.copyto(bottom[0].diff, top[0].diff.reshape(bottom[0].shape))

    # the cuda backend: the top is a device copy (memory of one shape cannot be shared with another shape)
    def forward_gpu(self, bottom, top):
        from crfrnn_np import cuda_ops
        cuda_ops.copy(bottom[0].gpu_data(), top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            from crfrnn_np import cuda_ops
            cuda_ops.copy(top[0].gpu_diff(), bottom[0].mutable_gpu_diff())


@register_layer("Reshape")
class ReshapeLayer(ViewLayer):
    """Reshape view with Caffe's 0 (copy) and -1 (infer) rules."""

    def layer_setup(self, bottom, top):
        p = self.layer_param.reshape_param
        dims = [int(d) for d in p.shape.dim]
        if sum(d == -1 for d in dims) > 1:
            raise self.error("at most one dimension of reshape_param.shape may be -1, got %s" % dims,
                             field="reshape_param")
        bad = [d for d in dims if d < -1]
        if bad:
            raise self.error("reshape_param.shape dims must be >= -1, got %s" % dims, field="reshape_param")
        if int(p.num_axes) < -1:
            raise self.error("reshape_param.num_axes must be >= -1, got %d" % p.num_axes, field="reshape_param")
        self.dims = dims

    def reshape(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("does not allow in-place computation")
        p = self.layer_param.reshape_param
        b = bottom[0]
        n = b.num_axes
        start = int(p.axis)
        if start < 0:
            start += n + 1
        if not 0 <= start <= n:
            raise self.shape_error("reshape_param.axis %d out of range for bottom '%s' of shape %s"
                                   % (p.axis, b.name, b.shape_string()), field="reshape_param")
        end = n if int(p.num_axes) == -1 else start + int(p.num_axes)
        if end > n:
            raise self.shape_error("reshape_param axis %d + num_axes %d exceed the %d axes of bottom '%s' (%s)"
                                   % (p.axis, p.num_axes, n, b.name, b.shape_string()), field="reshape_param")
        new = []
        for i, d in enumerate(self.dims):
            if d == 0:
                if start + i >= n:
                    raise self.shape_error("dim %d is 0 (copy) but bottom '%s' (%s) has no axis %d"
                                           % (i, b.name, b.shape_string(), start + i), field="reshape_param")
                d = b.shape[start + i]
            new.append(d)
        shape = list(b.shape[:start]) + new + list(b.shape[end:])
        if -1 in shape:
            known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
            if known == 0 or b.count % known:
                raise self.shape_error("cannot infer the -1 dim: bottom '%s' has %d elements, not a multiple "
                                       "of %d (shape %s)" % (b.name, b.count, known, self.dims),
                                       field="reshape_param")
            shape[shape.index(-1)] = b.count // known
        count = int(np.prod(shape, dtype=np.int64))
        if count != b.count:
            raise self.shape_error("output count %d (shape %s) must match the input count %d of bottom '%s' (%s)"
                                   % (count, " ".join(map(str, shape)), b.count, b.name, b.shape_string()),
                                   field="reshape_param")
        top[0].reshape(shape)
