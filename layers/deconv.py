"""Deconvolution: the exact adjoint (transpose) of Convolution (Caffe's ``deconv_layer``).

Shapes (``axis`` = channel axis, default 1)::

    bottom  (N..., C, *in)           weight  (C, O/G, *k)          bias (O,)
    top     (N..., O, *out)          out_i = stride_i*(in_i - 1) + dilation_i*(k_i - 1) + 1 - 2*pad_i

The weight has the memory layout of the Convolution whose gradient this layer computes: a convolution from
``O`` to ``C`` channels with the same geometry. So the three products of
:class:`crfrnn_np.layers.conv.ConvGeometry` (built here with im2col reading the TOP) serve with the roles
swapped::

    forward           y    = col2im(W_g^T @ x_g) (+ b)     = ConvGeometry.backward_data(x, W, y)
    backward, data    dx   = W_g @ im2col(dy)_g             = ConvGeometry.forward(dy, W, dx)
    backward, weight  dW  += x_g @ im2col(dy)_g^T           = ConvGeometry.backward_weight(dy, x, dW)
    backward, bias    db  += sum of dy over images and positions

Hence ``<conv(x; W), y> == <x, deconv(y; W)>`` for matching geometries. With ``weight_filler { type:
"bilinear" }``, ``kernel_size 2f``, ``stride f``, ``pad f/2`` and ``group = C = O`` it is bilinear upsampling by ``f``
(CRF-RNN's ``upscore`` layers).
"""
from ..layer import register_layer
from .conv import BaseConvolution


@register_layer("Deconvolution")
class DeconvolutionLayer(BaseConvolution):
    """Caffe's Deconvolution layer (see the module docstring)."""

    reverse = True

    def output_spatial(self, in_shape, bottom):
        out = []
        for i, k, p, s, d in zip(in_shape, self.kernel, self.pad, self.stride, self.dilation):
            o = s * (i - 1) + d * (k - 1) + 1 - 2 * p
            if i < 1 or o < 1:
                raise self.shape_error(
                    "bottom '%s' of shape %s gives an empty output with %s (output size %d)"
                    % (bottom.name, bottom.shape_string(), self._describe(), o))
            out.append(o)
        return tuple(out)

    def forward_cpu(self, bottom, top):
        geo, w2 = self._geometry, self._weight2d()
        for b, t in zip(bottom, top):
            x = self._images(b, self.channels, self.in_spatial)
            y = self._images(t, self.num_output, self.out_spatial)
            for n in range(self.num):
                geo.backward_data(x[n], w2, y[n])
            self._add_bias(t)

    def backward_cpu(self, top, propagate_down, bottom):
        geo, w2 = self._geometry, self._weight2d()
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = self._images(t, self.num_output, self.out_spatial, diff=True)
            self._bias_backward(t)
            if self.param_propagate_down[0]:
                x = self._images(b, self.channels, self.in_spatial)
                dw2 = self._weight2d(diff=True)
                for n in range(self.num):
                    geo.backward_weight(dy[n], x[n], dw2)
            if propagate_down[i]:
                dx = self._images(b, self.channels, self.in_spatial, diff=True)
                for n in range(self.num):
                    geo.forward(dy[n], w2, dx[n])
