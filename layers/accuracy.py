"""Accuracy: the fraction of positions whose label is among the ``top_k`` highest scores.

Bottom 0: scores viewed as ``(outer, C, inner)`` around ``accuracy_param.axis`` (default 1). Bottom 1:
labels, ``outer * inner`` values. Top 0: scalar accuracy; optional top 1: per-class accuracy, shape (C,).

For each position whose label ``l`` is not ``ignore_label`` (ignoring only when the field is present)::

    correct  <=>  #{k : score_k >= score_l} <= top_k

The true class counts itself, so ties count *against* it (Caffe's rule). ``accuracy = correct / counted``
(0 when nothing is counted); per class ``correct_c / counted_c`` (0 for absent classes). No backward.
"""
import numpy as np

from crfrnn_np.layer import Layer, register_layer

from .labels import check_range, device_label_error, host_labels, int_labels


@register_layer("Accuracy")
class AccuracyLayer(Layer):
    """Top-k classification accuracy (test-time metric; asking for a gradient is an error)."""

    exact_num_bottom = 2
    min_num_top = 1
    max_num_top = 2

    def layer_setup(self, bottom, top):
        ap = self.layer_param.accuracy_param
        self.top_k = int(ap.top_k)
        self.ignore_label = int(ap.ignore_label) if ap.has("ignore_label") else None

    def reshape(self, bottom, top):
        scores, labels = bottom
        try:
            self.axis = scores.canonical_axis(int(self.layer_param.accuracy_param.axis))
        except Exception as exc:
            raise self.shape_error(str(exc), field="accuracy_param") from None
        self.outer = scores.count_range(0, self.axis)
        self.inner = scores.count_range(self.axis + 1)
        self.channels = scores.shape[self.axis]
        if self.top_k > self.channels:
            raise self.error("top_k %d must be less than or equal to the number of classes %d of '%s' (%s)"
                             % (self.top_k, self.channels, scores.name, scores.shape_string()),
                             field="accuracy_param")
        if labels.count != self.outer * self.inner:
            raise self.shape_error("number of labels must match the number of predictions: '%s' %s has %d "
                                   "positions but '%s' %s has %d labels"
                                   % (scores.name, scores.shape_string(), self.outer * self.inner,
                                      labels.name, labels.shape_string(), labels.count))
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((self.channels,))

    def forward_cpu(self, bottom, top):
        s = bottom[0].cpu_data().reshape(self.outer, self.channels, self.inner)
        labels, valid = int_labels(bottom[1].cpu_data().reshape(self.outer, self.inner), self.ignore_label)
        check_range(self, bottom[1], labels, valid, self.channels)
        safe = np.where(valid, labels, 0)
        true_score = np.take_along_axis(s, safe[:, None, :], axis=1)
        at_least = (s >= true_score).sum(axis=1)
        correct = (at_least <= self.top_k) & valid
        counted = int(valid.sum())
        top[0].data[...] = correct.sum() / counted if counted else 0.0
        if len(top) > 1:
            n_c = np.bincount(labels[valid], minlength=self.channels)
            ok_c = np.bincount(labels[correct], minlength=self.channels)
            top[1].data[...] = np.where(n_c > 0, ok_c / np.maximum(n_c, 1), 0.0)

    def backward_cpu(self, top, propagate_down, bottom):
        if any(propagate_down):
            raise self.error("Accuracy has no backward (a gradient was requested for its bottoms)")

    def allow_force_backward(self, bottom_index):
        return False

    def forward_gpu(self, bottom, top):
        # loss_cuda.py. The labels are checked where they are current (labels.py): on the host when the host
        # copy is (nothing crosses); labels that exist only on the device are checked there, and the first bad
        # position (one int64) is read back every forward, which waits for the device.
        from crfrnn_np import cuda_ops
        from .crf_cuda import planes
        from .loss_cuda import accuracy
        host = host_labels(bottom[1])
        if host is not None:
            check_range(self, bottom[1], *int_labels(host, self.ignore_label), self.channels)
        n = self.outer * self.inner
        if getattr(self, "_device_status", None) is None or self._device_status.size != max(n, 1):
            self._device_status = cuda_ops.empty(max(n, 1), np.int32)
            self._device_per_class = cuda_ops.empty(self.channels, self.dtype)
            self._device_bad = cuda_ops.empty(1, np.int64)
        per_class = cuda_ops.flat(top[1].mutable_gpu_data()) if len(top) > 1 else self._device_per_class
        accuracy(planes(bottom[0].gpu_data(), self.outer, self.channels, self.inner),
                 cuda_ops.flat(bottom[1].gpu_data()), self.ignore_label, self.top_k, self._device_status[:n],
                 cuda_ops.flat(top[0].mutable_gpu_data()), per_class, self._device_bad)
        if host is None:
            where = int(self._device_bad.copy_to_host()[0])
            if where >= 0:
                raise device_label_error(self, bottom[1], where, self.channels)
