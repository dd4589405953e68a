"""ReLU (leaky when ``negative_slope`` is non-zero).

Forward, element-wise on any shape::

    y = max(x, 0) + negative_slope * min(x, 0)

Backward::

    dE/dx = dE/dy * (1 if x > 0 else negative_slope)

At ``x == 0`` the slope branch is taken (gradient 0 for a plain ReLU), as in Caffe. The layer is usually run
in place (top blob is the bottom blob); then ``x`` seen by the backward is the output ``y``, which has the
sign of the input whenever ``negative_slope >= 0``, so the mask is the same.
"""
import numpy as np

from crfrnn_np.layer import NeuronLayer, register_layer


@register_layer("ReLU")
class ReLULayer(NeuronLayer):
    """Rectified linear unit; in-place safe. Bottom and top: any shape, the same."""

    def layer_setup(self, bottom, top):
        self.negative_slope = float(self.layer_param.relu_param.negative_slope)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        slope = self.dtype.type(self.negative_slope)
        if self.negative_slope == 0.0:
            np.maximum(x, 0, out=top[0].data)
        else:
            top[0].data[...] = np.where(x > 0, x, x * slope)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data
        factor = np.where(x > 0, self.dtype.type(1), self.dtype.type(self.negative_slope))
        np.multiply(top[0].diff, factor, out=bottom[0].diff)

    def forward_gpu(self, bottom, top):
        from .neuron_cuda import launch, relu_forward_kernel
        launch(relu_forward_kernel, bottom[0].gpu_data(), self.dtype.type(self.negative_slope),
               top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        from .neuron_cuda import launch, relu_backward_kernel
        launch(relu_backward_kernel, bottom[0].gpu_data(), top[0].gpu_diff(), self.dtype.type(self.negative_slope),
               bottom[0].mutable_gpu_diff())
