"""Sigmoid, element-wise on any shape.

Forward::

    y = 1 / (1 + exp(-x)) = 0.5 * tanh(0.5 * x) + 0.5      (the tanh form never overflows)

Backward (from the output, so in-place use is safe)::

    dE/dx = dE/dy * y * (1 - y)
"""
import numpy as np

from crfrnn_np.layer import NeuronLayer, register_layer


@register_layer("Sigmoid")
class SigmoidLayer(NeuronLayer):
    """Logistic sigmoid; in-place safe. Bottom and top: any shape, the same."""

    def forward_cpu(self, bottom, top):
        half = self.dtype.type(0.5)
        y = np.tanh(bottom[0].data * half)
        y *= half
        y += half
        top[0].data[...] = y

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        bottom[0].diff[...] = top[0].diff * y * (1 - y)

    def forward_gpu(self, bottom, top):
        from .neuron_cuda import launch, sigmoid_forward_kernel
        launch(sigmoid_forward_kernel, bottom[0].gpu_data(), self.dtype.type(0.5), top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        from .neuron_cuda import launch, sigmoid_backward_kernel
        launch(sigmoid_backward_kernel, top[0].gpu_data(), top[0].gpu_diff(), self.dtype.type(1),
               bottom[0].mutable_gpu_diff())
