r"""UnaryAdd: the last step of a mean-field iteration, L = U − Φ.

Bottoms: the unary U and the pairwise term Φ (the compatibility-transformed messages), both (N, C, H, W).
Top: L = U − Φ, the un-normalised logits that the next iteration soft-maxes (spec crfasrnn.md §2.1 step 7;
the reference uses an Eltwise SUM with coefficients +1, −1).

Backward: ∂U = ∂L, ∂Φ = −∂L (both overwritten).
"""
import numpy as np

from crfrnn_np.layer import Layer, register_layer


@register_layer("UnaryAdd")
class UnaryAddLayer(Layer):
    """``top = bottom[0] − bottom[1]``; see the module docstring."""

    exact_num_bottom = 2
    exact_num_top = 1

    def reshape(self, bottom, top):
        if bottom[0].shape != bottom[1].shape:
            raise self.shape_error("unary '%s' %s and pairwise '%s' %s must have the same shape"
                                   % (bottom[0].name, bottom[0].shape_string(), bottom[1].name,
                                      bottom[1].shape_string()))
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        np.subtract(bottom[0].data, bottom[1].data, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff
        if propagate_down[1]:
            np.negative(top[0].diff, out=bottom[1].diff)

    def forward_gpu(self, bottom, top):
        from crfrnn_np import cuda_ops
        cuda_ops.axpby(1, bottom[0].gpu_data(), -1, bottom[1].gpu_data(), top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        from crfrnn_np import cuda_ops
        if propagate_down[0]:
            cuda_ops.copy(top[0].gpu_diff(), bottom[0].mutable_gpu_diff())
        if propagate_down[1]:
            cuda_ops.scale(-1, top[0].gpu_diff(), bottom[1].mutable_gpu_diff())
