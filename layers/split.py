"""Split: one bottom feeding several consumers (inserted by the net wherever a top fans out).

Forward: every top *aliases* the bottom's data (``top_k.data`` is the very array ``bottom.data``), so the
split costs no copy. Backward::

    dE/dx = sum_k dE/dy_k          (a copy when there is a single top)

Bottom and tops: any shape, the same. In-place use is forbidden.
"""
import numpy as np

from crfrnn_np.layer import Layer, register_layer


@register_layer("Split")
class SplitLayer(Layer):
    """Fan-out with summed gradients."""

    exact_num_bottom = 1
    min_num_top = 1

    def reshape(self, bottom, top):
        for t in top:
            if t is bottom[0]:
                raise self.error("does not allow in-place computation (top '%s' is its bottom)" % t.name)
            t.reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        for t in top:
            t.data = bottom[0].data

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        out = bottom[0].diff
        if len(top) == 1:
            np.copyto(out, top[0].diff)
            return
        np.add(top[0].diff, top[1].diff, out=out)
        for t in top[2:]:
            out += t.diff

    def forward_gpu(self, bottom, top):
        # Caffe's Split shares the bottom's memory with every top: nothing is copied, host or device
        for t in top:
            t.share_data(bottom[0])

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        from crfrnn_np import cuda_ops
        out = bottom[0].mutable_gpu_diff()
        if len(top) == 1:
            cuda_ops.copy(top[0].gpu_diff(), out)
            return
        cuda_ops.axpby(1, top[0].gpu_diff(), 1, top[1].gpu_diff(), out)
        for t in top[2:]:
            cuda_ops.axpby(1, out, 1, t.gpu_diff(), out)
