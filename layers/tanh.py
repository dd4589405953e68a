"""TanH, element-wise on any shape.

Forward::

    y = tanh(x)

Backward (from the output, so in-place use is safe)::

    dE/dx = dE/dy * (1 - y^2)
"""
import numpy as np

from crfrnn_np.layer import NeuronLayer, register_layer


@register_layer("TanH")
class TanHLayer(NeuronLayer):
    """Hyperbolic tangent; in-place safe. Bottom and top: any shape, the same."""

    def forward_cpu(self, bottom, top):
        np.tanh(bottom[0].data, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        bottom[0].diff[...] = top[0].diff * (1 - y * y)

    def forward_gpu(self, bottom, top):
        from .neuron_cuda import launch, tanh_forward_kernel
        launch(tanh_forward_kernel, bottom[0].gpu_data(), top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        from .neuron_cuda import launch, tanh_backward_kernel
        launch(tanh_backward_kernel, top[0].gpu_data(), top[0].gpu_diff(), self.dtype.type(1),
               bottom[0].mutable_gpu_diff())
