"""InnerProduct (fully connected): ``top = bottom @ W^T + b`` (Caffe's ``inner_product_layer``).

Shapes (``axis`` default 1; ``M = count(0, axis)``, ``K = count(axis, end)``, ``N = num_output``)::

    bottom (d_0, ..., d_{axis-1}, ...)  viewed as X (M, K)       top (d_0, ..., d_{axis-1}, N) = Y (M, N)
    weight W (N, K), or (K, N) with ``transpose: true``          bias b (N,)

    forward           Y   = X @ W^T + b          (transpose: X @ W + b)
    backward, data    dX  = dY @ W               (transpose: dY @ W^T)           (overwritten)
    backward, weight  dW += dY^T @ X             (transpose: X^T @ dY)           (accumulated)
    backward, bias    db += sum over rows of dY                                   (accumulated)
"""
import numpy as np

from ..errors import ShapeError
from ..fillers import fill
from ..layer import Layer, register_layer


@register_layer("InnerProduct")
class InnerProductLayer(Layer):
    """Caffe's InnerProduct layer (see the module docstring)."""

    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        ip = self.layer_param.inner_product_param
        f = "inner_product_param"
        self.num_output = int(ip.num_output)
        if self.num_output <= 0:
            raise self.error("num_output must be positive, got %d" % self.num_output, field=f)
        self.bias_term = bool(ip.bias_term)
        self.transpose = bool(ip.transpose)
        try:
            self.axis = bottom[0].canonical_axis(int(ip.axis))
        except ShapeError as exc:
            raise self.shape_error("axis %d: %s" % (ip.axis, exc), field=f) from None
        self.K = bottom[0].count_range(self.axis)
        wshape = (self.K, self.num_output) if self.transpose else (self.num_output, self.K)
        self.blobs = [self.make_blob(wshape, self.name + "/weight")]
        fill(self.blobs[0].data, ip.weight_filler, where="layer '%s': weight_filler: " % self.name)
        if self.bias_term:
            self.blobs.append(self.make_blob((self.num_output,), self.name + "/bias"))
            fill(self.blobs[1].data, ip.bias_filler, where="layer '%s': bias_filler: " % self.name)
        self.param_propagate_down = [True] * len(self.blobs)

    def reshape(self, bottom, top):
        b = bottom[0]
        if b.num_axes < self.axis:
            raise self.shape_error("bottom '%s' of shape %s has no axis %d"
                                   % (b.name, b.shape_string(), self.axis))
        k = b.count_range(self.axis)
        if k != self.K:
            raise self.shape_error("bottom '%s' of shape %s has %d inputs per row from axis %d; the weights "
                                   "(%s) need %d" % (b.name, b.shape_string(), k, self.axis,
                                                     self.blobs[0].shape_string(), self.K))
        self.M = b.count_range(0, self.axis)
        top[0].reshape(b.shape[:self.axis] + (self.num_output,))

    def _weight_nk(self, a):
        """The weight (or its diff) as an (N, K) view."""
        return a.T if self.transpose else a

    def forward_cpu(self, bottom, top):
        x = bottom[0].data.reshape(self.M, self.K)
        y = top[0].data.reshape(self.M, self.num_output)
        np.matmul(x, self._weight_nk(self.blobs[0].data).T, out=y)
        if self.bias_term:
            y += self.blobs[1].data

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.M, self.num_output)
        if self.param_propagate_down[0]:
            x = bottom[0].data.reshape(self.M, self.K)
            self._weight_nk(self.blobs[0].diff)[...] += dy.T @ x
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff[...] += dy.sum(axis=0)
        if propagate_down[0]:
            dx = bottom[0].diff.reshape(self.M, self.K)
            np.matmul(dy, self._weight_nk(self.blobs[0].data), out=dx)

    def forward_gpu(self, bottom, top):
        from . import conv_cuda, inner_product_cuda as ipc
        y = top[0].mutable_gpu_data().reshape(self.M, self.num_output)
        ipc.launch(ipc.ip_forward_kernel, bottom[0].gpu_data().reshape(self.M, self.K), self.blobs[0].gpu_data(),
                   self.transpose, y)
        if self.bias_term:
            conv_cuda.add_bias(y.reshape(self.M, self.num_output, 1), self.blobs[1].gpu_data())

    def backward_gpu(self, top, propagate_down, bottom):
        from . import conv_cuda, inner_product_cuda as ipc
        dy = top[0].gpu_diff().reshape(self.M, self.num_output)
        if self.param_propagate_down[0]:
            ipc.launch(ipc.ip_backward_weight_kernel, dy, bottom[0].gpu_data().reshape(self.M, self.K),
                       self.transpose, self.blobs[0].mutable_gpu_diff())
        if self.bias_term and self.param_propagate_down[1]:
            conv_cuda.bias_backward(dy.reshape(self.M, self.num_output, 1), self.blobs[1].mutable_gpu_diff())
        if propagate_down[0]:
            ipc.launch(ipc.ip_backward_data_kernel, dy, self.blobs[0].gpu_data(), self.transpose,
                       bottom[0].mutable_gpu_diff().reshape(self.M, self.K))
