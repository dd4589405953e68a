"""SoftmaxWithLoss: softmax over ``softmax_param.axis`` followed by the multinomial logistic loss.

Bottom 0: scores viewed as ``(outer, C, inner)`` around the axis (default 1, e.g. N x C x H x W gives
outer = N, inner = H*W). Bottom 1: labels, ``outer * inner`` values (read as float, truncated to int).
Top 0: the scalar loss; optional top 1: the probabilities (bottom 0's shape).

Forward, with ``p = softmax(x)`` and ``valid`` = positions whose label is not ``loss_param.ignore_label``
(ignoring is enabled only when that field is present)::

    loss = -sum_{valid (o, i)} log(max(p[o, label(o, i), i], FLT_MIN)) / max(1, normalizer)

Normalizer (``loss_param.normalization``, default VALID; the deprecated ``normalize: true/false`` means
VALID/BATCH_SIZE when ``normalization`` is absent): FULL = outer*inner, VALID = number of valid positions,
BATCH_SIZE = outer, NONE = 1.

Backward (bottom 0 only; a gradient for the labels is an error)::

    dE/dx = (p - onehot(label)) * top_diff / max(1, normalizer)       at valid positions, 0 at ignored ones

``top_diff`` is top 0's diff, the loss weight (1 by default).
"""
import numpy as np

from crfrnn_np.layer import Layer, register_layer

from .labels import check_range, device_label_error, host_labels, int_labels
from .softmax import softmax

#: Smallest positive normal float32 (C's FLT_MIN); the probability clamp of Caffe, in float64 too.
FLT_MIN = 1.1754943508222875e-38


def loss_normalization(loss_param):
    """The normalization mode name of a LossParameter, resolving the legacy ``normalize`` flag."""
    if loss_param.has("normalization"):
        return loss_param.normalization
    if loss_param.has("normalize"):
        return "VALID" if loss_param.normalize else "BATCH_SIZE"
    return "VALID"


def loss_normalizer(mode, outer, inner, valid_count):
    """``max(1, n)`` for the normalization ``mode`` (FULL, VALID, BATCH_SIZE or NONE)."""
    if mode == "FULL":
        n = outer * inner
    elif mode == "VALID":
        n = valid_count
    elif mode == "BATCH_SIZE":
        n = outer
    else:
        n = 1
    return float(max(1.0, n))


@register_layer("SoftmaxWithLoss")
class SoftmaxWithLossLayer(Layer):
    """Softmax + multinomial logistic loss with ignore label and normalization modes.

    Attributes
    ----------
    prob : ndarray
        Probabilities of the last forward (bottom 0's shape).
    """

    exact_num_bottom = 2
    min_num_top = 1
    max_num_top = 2
    is_loss = True
    no_gradient_bottoms = {1: "the labels are class indices"}

    def layer_setup(self, bottom, top):
        lp = self.layer_param.loss_param
        self.ignore_label = int(lp.ignore_label) if lp.has("ignore_label") else None
        self.normalization = loss_normalization(lp)
        self.prob = None

    def reshape(self, bottom, top):
        scores, labels = bottom
        try:
            self.axis = scores.canonical_axis(int(self.layer_param.softmax_param.axis))
        except Exception as exc:
            raise self.shape_error(str(exc), field="softmax_param") from None
        self.outer = scores.count_range(0, self.axis)
        self.inner = scores.count_range(self.axis + 1)
        self.channels = scores.shape[self.axis]
        if labels.num_axes and scores.num_axes and labels.shape[0] != scores.shape[0]:
            raise self.shape_error("the data and label should have the same first dimension: '%s' is %s, '%s' "
                                   "is %s" % (scores.name, scores.shape_string(), labels.name,
                                              labels.shape_string()))
        if labels.count != self.outer * self.inner:
            raise self.shape_error("number of labels must match the number of predictions: '%s' %s has %d "
                                   "positions (outer %d x inner %d) but '%s' %s has %d labels"
                                   % (scores.name, scores.shape_string(), self.outer * self.inner, self.outer,
                                      self.inner, labels.name, labels.shape_string(), labels.count))
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape(scores.shape)

    def _labels(self, labels_blob):
        """(outer, inner) int labels and the bool mask of valid positions; checks the range (labels.py)."""
        labels, valid = int_labels(labels_blob.cpu_data().reshape(self.outer, self.inner), self.ignore_label)
        check_range(self, labels_blob, labels, valid, self.channels)
        return labels, valid

    def forward_cpu(self, bottom, top):
        self.prob = softmax(bottom[0].data, self.axis)
        labels, valid = self._labels(bottom[1])
        p = self.prob.reshape(self.outer, self.channels, self.inner)
        picked = np.take_along_axis(p, np.where(valid, labels, 0)[:, None, :], axis=1)[:, 0, :]
        logs = np.log(np.maximum(picked[valid].astype(np.float64), FLT_MIN))
        self.normalizer = loss_normalizer(self.normalization, self.outer, self.inner, int(valid.sum()))
        top[0].data[...] = -logs.sum() / self.normalizer
        if len(top) > 1:
            top[1].data[...] = self.prob

    def backward_cpu(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            raise self.error("cannot backpropagate to the label input '%s'" % bottom[1].name)
        if not propagate_down[0]:
            return
        labels, valid = self._labels(bottom[1])
        g = self.prob.reshape(self.outer, self.channels, self.inner).copy()
        o, i = np.nonzero(valid)
        g[o, labels[o, i], i] -= 1
        g *= valid[:, None, :]
        g *= self.dtype.type(float(top[0].diff.flat[0]) / self.normalizer)
        bottom[0].diff[...] = g.reshape(bottom[0].shape)

    # -- device (loss_cuda.py): the probabilities stay on the device. The labels are checked where they are
    # current (labels.py): on the host, before any launch, when the host copy is (nothing crosses); otherwise
    # the kernel marks a bad label by a NaN loss and its position, and the loss is read back to look (the
    # scalar the net reads back anyway when the loss is weighted or an output; the position and the label
    # cross only to write the error).
    def _device_buffers(self):
        from crfrnn_np import cuda_ops
        shape = (self.outer, self.channels, self.inner)
        if getattr(self, "_device_prob", None) is None or self._device_prob.shape != shape:
            self._device_prob = cuda_ops.empty(shape, self.dtype)
            self._device_state = cuda_ops.empty(2, np.float64)
        return self._device_prob, self._device_state

    def forward_gpu(self, bottom, top):
        from crfrnn_np import cuda_ops
        from .crf_cuda import softmax as device_softmax
        from .loss_cuda import softmax_loss
        host = host_labels(bottom[1])
        if host is not None:
            check_range(self, bottom[1], *int_labels(host, self.ignore_label), self.channels)
        prob, state = self._device_buffers()
        device_softmax(bottom[0].gpu_data(), prob, self.outer, self.channels, self.inner)
        labels = cuda_ops.flat(bottom[1].gpu_data())
        softmax_loss(prob, labels, self.ignore_label, self.normalization, cuda_ops.flat(top[0].mutable_gpu_data()),
                     state)
        if len(top) > 1:
            cuda_ops.copy(prob, top[1].mutable_gpu_data())
        if host is None and np.isnan(top[0].cpu_data()):    # a bad label, or NaN scores: ask which
            where = int(state.copy_to_host()[1])
            if where >= 0:
                raise device_label_error(self, bottom[1], where, self.channels)

    def backward_gpu(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            raise self.error("cannot backpropagate to the label input '%s'" % bottom[1].name)
        if not propagate_down[0]:
            return
        from crfrnn_np import cuda_ops
        from .crf_cuda import planes
        from .loss_cuda import softmax_loss_backward
        prob, state = self._device_buffers()
        softmax_loss_backward(prob, cuda_ops.flat(bottom[1].gpu_data()), self.ignore_label,
                              cuda_ops.flat(top[0].gpu_diff()), state,
                              planes(bottom[0].mutable_gpu_diff(), self.outer, self.channels, self.inner))
