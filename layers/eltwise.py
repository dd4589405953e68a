"""Eltwise: element-wise combination of two or more bottoms of identical shape.

``eltwise_param.operation`` (default SUM):

SUM (optional ``coeff``, one per bottom, default 1)::

    y = sum_i coeff_i * x_i                   dE/dx_i = coeff_i * dE/dy

PROD (no coefficients)::

    y = prod_i x_i                            dE/dx_i = dE/dy * prod_{j != i} x_j   (stable_prod_grad, default)
                                              dE/dx_i = dE/dy * y / x_i              (stable_prod_grad: false)

MAX, with Caffe's CPU tie rules: bottom 1 beats bottom 0 unless ``x_0 > x_1`` strictly; a later bottom
``k >= 2`` replaces the current winner only if strictly greater. ``mask`` records the winner index::

    y = x_{mask}                              dE/dx_i = dE/dy where mask == i, else 0
"""
import numpy as np

from crfrnn_np.layer import Layer, register_layer


@register_layer("Eltwise")
class EltwiseLayer(Layer):
    """Element-wise SUM / PROD / MAX of the bottoms.

    Attributes
    ----------
    mask : ndarray of int32
        MAX only: index of the winning bottom per element (the top's shape).
    """

    min_num_bottom = 2
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.layer_param.eltwise_param
        self.operation = p.operation
        self.differentiable_at_ties = self.operation != "MAX"
        coeff = [float(c) for c in p.coeff]
        if coeff and self.operation != "SUM":
            raise self.error("coefficients (coeff) are only allowed for operation SUM, not %s"
                             % self.operation, field="eltwise_param")
        if coeff and len(coeff) != len(bottom):
            raise self.error("needs one coeff per bottom: %d bottoms, %d coeffs" % (len(bottom), len(coeff)),
                             field="eltwise_param")
        self.coeff = coeff or [1.0] * len(bottom)
        self.stable_prod_grad = bool(p.stable_prod_grad)
        self.mask = None

    def reshape(self, bottom, top):
        for b in bottom[1:]:
            if b.shape != bottom[0].shape:
                raise self.shape_error("bottoms must have identical shapes: '%s' is %s, '%s' is %s"
                                       % (bottom[0].name, bottom[0].shape_string(), b.name, b.shape_string()))
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        xs = [b.data for b in bottom]
        if self.operation == "PROD":
            y = xs[0] * xs[1]
            for x in xs[2:]:
                y *= x
        elif self.operation == "SUM":
            c = [self.dtype.type(v) for v in self.coeff]
            y = xs[0] * c[0]
            for x, ci in zip(xs[1:], c[1:]):
                y += x * ci
        else:
            win1 = ~(xs[0] > xs[1])
            y = np.where(win1, xs[1], xs[0])
            mask = win1.astype(np.int32)
            for k, x in enumerate(xs[2:], start=2):
                better = x > y
                y[better] = x[better]
                mask[better] = k
            self.mask = mask
        top[0].data[...] = y

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff
        grads = []
        for i, (b, down) in enumerate(zip(bottom, propagate_down)):
            if not down:
                grads.append(None)
            elif self.operation == "PROD":
                if self.stable_prod_grad:
                    g = dy.copy()
                    for j, other in enumerate(bottom):
                        if j != i:
                            g *= other.data
                else:
                    g = dy * top[0].data / b.data
                grads.append(g)
            elif self.operation == "SUM":
                grads.append(dy * self.dtype.type(self.coeff[i]))
            else:
                grads.append(np.where(self.mask == i, dy, self.dtype.type(0)))
        for b, g in zip(bottom, grads):
            if g is not None:
                b.diff[...] = g

    def forward_gpu(self, bottom, top):
        from crfrnn_np import cuda_ops
        from . import eltwise_cuda
        xs = [b.gpu_data() for b in bottom]
        out = top[0].mutable_gpu_data()
        if self.operation == "PROD":
            eltwise_cuda.multiply(xs[0], xs[1], out)
            for x in xs[2:]:
                eltwise_cuda.multiply(out, x, out)
        elif self.operation == "SUM":
            cuda_ops.scale(self.coeff[0], xs[0], out)
            for x, c in zip(xs[1:], self.coeff[1:]):
                cuda_ops.axpby(1, out, c, x, out)
        else:
            if getattr(self, "_device_mask", None) is None or self._device_mask.size != out.size:
                self._device_mask = cuda_ops.empty(out.size, np.int32)
            eltwise_cuda.eltwise_max(xs, out, self._device_mask)

    def backward_gpu(self, top, propagate_down, bottom):
        from crfrnn_np import cuda_ops
        from . import eltwise_cuda
        dy = top[0].gpu_diff()
        for i, (b, down) in enumerate(zip(bottom, propagate_down)):
            if not down:
                continue
            dx = b.mutable_gpu_diff()
            if self.operation == "PROD":
                if self.stable_prod_grad:
                    cuda_ops.copy(dy, dx)
                    for j, other in enumerate(bottom):
                        if j != i:
                            eltwise_cuda.multiply(dx, other.gpu_data(), dx)
                else:
                    eltwise_cuda.multiply(dy, top[0].gpu_data(), dx)
                    eltwise_cuda.divide(dx, b.gpu_data(), dx)
            elif self.operation == "SUM":
                cuda_ops.scale(self.coeff[i], dy, dx)
            else:
                eltwise_cuda.eltwise_max_backward(dy, self._device_mask, i, dx)
