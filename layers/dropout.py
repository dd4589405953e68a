"""Dropout (inverted: the scaling happens at training time).

With ``p = dropout_param.dropout_ratio`` (default 0.5) and ``scale = 1 / (1 - p)``, element-wise on any shape:

TRAIN phase::

    mask ~ Bernoulli(1 - p)        (1 = keep; drawn from crfrnn_np.random.rng() at every forward)
    y = x * mask * scale
    dE/dx = dE/dy * mask * scale

TEST phase: ``y = x`` and ``dE/dx = dE/dy``.

The phase is the layer's own (``layer_param.phase`` if set, else the net's). In-place safe.

On the device (``cuda`` backend) the TRAIN mask is the CPU layer's mask bit for bit, drawn by the kernel from
the generator's state, which then moves on as on the host (see dropout_cuda.py).
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

    def _draw_mask(self, shape):
        """The keep mask of one TRAIN forward, from the engine's generator (the same draw on both backends)."""
        self.mask = crfrnn_random.rng().random(shape) < (1.0 - self.ratio)
        return self.mask

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        if self.phase == "TRAIN":
            self._draw_mask(x.shape)
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

    # The device forward draws the mask on the device from the engine's PCG64 state, the very draws of the CPU
    # layer, and moves the host generator on past them (dropout_cuda.py): nothing crosses. Another bit generator
    # (set by hand) has no device form: then the mask is drawn on the host and sent as bits (copy_cuda.py).
    def forward_gpu(self, bottom, top):
        from crfrnn_np import cuda_ops
        if self.phase != "TRAIN":
            if top[0] is not bottom[0]:
                cuda_ops.copy(bottom[0].gpu_data(), top[0].mutable_gpu_data())
            return
        self._device_draw = self._device_bits = None
        self._device_mask(bottom[0].shape, cuda_ops.flat(bottom[0].gpu_data()), cuda_ops.flat(top[0].mutable_gpu_data()))

    def _device_mask(self, shape, x, y):
        """``y = x * mask * scale`` on the device with a new mask (remembered for the backward)."""
        from .dropout_cuda import advance, dropout, generator_state
        rng = crfrnn_random.rng()
        state = generator_state(rng)
        if state is not None:
            self.mask = None                        # on the device only: drawn again by the backward
            self._device_draw = state
            dropout(x, state, 1.0 - self.ratio, self.scale, y)
            advance(rng, x.size)
            return
        from crfrnn_np import cuda_ops
        from .copy_cuda import dropout as dropout_bits
        bits = np.packbits(self._draw_mask(shape).reshape(-1), bitorder="little")
        self._device_bits = cuda_ops.empty(bits.size, np.uint8)
        self._device_bits.copy_to_device(bits)
        dropout_bits(x, self._device_bits, self.scale, y)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        from crfrnn_np import cuda_ops
        dy, dx = cuda_ops.flat(top[0].gpu_diff()), cuda_ops.flat(bottom[0].mutable_gpu_diff())
        if self.phase != "TRAIN":
            if top[0] is not bottom[0]:
                cuda_ops.copy(dy, dx)
        elif self._device_draw is not None:
            from .dropout_cuda import dropout
            dropout(dy, self._device_draw, 1.0 - self.ratio, self.scale, dx)
        else:
            from .copy_cuda import dropout as dropout_bits
            dropout_bits(dy, self._device_bits, self.scale, dx)
