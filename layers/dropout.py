"""Dropout (inverted: the scaling happens at training time).

With ``p = dropout_param.dropout_ratio`` (default 0.5) and ``scale = 1 / (1 - p)``, element-wise on any shape:

TRAIN phase::

    mask ~ Bernoulli(1 - p)        (1 = keep; drawn from crfrnn_np.random.rng() at every forward)
    y = x * mask * scale
    dE/dx = dE/dy * mask * scale

TEST phase: ``y = x`` and ``dE/dx = dE/dy``.

The phase is the layer's own (``layer_param.phase`` if set, else the net's). In-place safe.
"""
import numpy as np

from crfrnn_np import random as crfrnn_random
from crfrnn_np.layer import NeuronLayer, register_layer


@register_layer("Dropout")
class DropoutLayer(NeuronLayer):
    """Inverted dropout. Bottom and top: any shape, the same.

    Attributes
    ----------
    mask : ndarray of bool
        The keep mask of the last TRAIN forward (bottom's shape).
    """

    def layer_setup(self, bottom, top):
        self.ratio = float(self.layer_param.dropout_param.dropout_ratio)
        if not 0.0 < self.ratio < 1.0:
            raise self.error("dropout_ratio must lie strictly between 0 and 1, got %g" % self.ratio,
                             field="dropout_param")
        self.scale = 1.0 / (1.0 - self.ratio)
        self.mask = None

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        if self.phase == "TRAIN":
            self.mask = crfrnn_random.rng().random(x.shape) < (1.0 - self.ratio)
            factor = self.mask.astype(self.dtype) * self.dtype.type(self.scale)
            np.multiply(x, factor, out=top[0].data)
        elif top[0] is not bottom[0]:
            np.copyto(top[0].data, x)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        if self.phase == "TRAIN":
            factor = self.mask.astype(self.dtype) * self.dtype.type(self.scale)
            np.multiply(dy, factor, out=bottom[0].diff)
        elif top[0] is not bottom[0]:
            np.copyto(bottom[0].diff, dy)

    # the cuda backend: TEST is a copy on the device; TRAIN draws the mask from the same host stream as the
    # CPU (so both backends drop the same units) and sends the factor across once per forward
    def forward_gpu(self, bottom, top):
        from crfrnn_np import cuda_ops
        x = bottom[0].gpu_data()
        if self.phase == "TRAIN":
            from numba import cuda
            from .copy_cuda import multiply
            self.mask = crfrnn_random.rng().random(x.shape) < (1.0 - self.ratio)
            self._device_factor = cuda.to_device(self.mask.astype(self.dtype) * self.dtype.type(self.scale))
            multiply(x, self._device_factor, top[0].mutable_gpu_data())
        elif top[0] is not bottom[0]:
            cuda_ops.copy(x, top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        from crfrnn_np import cuda_ops
        dy = top[0].gpu_diff()
        if self.phase == "TRAIN":
            from .copy_cuda import multiply
            multiply(dy, self._device_factor, bottom[0].mutable_gpu_diff())
        elif top[0] is not bottom[0]:
            cuda_ops.copy(dy, bottom[0].mutable_gpu_diff())
