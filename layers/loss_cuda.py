"""Device kernels of SoftmaxWithLoss and Accuracy. Scores and probabilities are viewed as (outer, C, inner),
labels (a float blob, as the net feeds them) as (outer, inner). The label checks and the valid count are made
on the host, where the labels (a net input) already are; each loss or accuracy value crosses back once, as the
layer's output. The sum over positions is one thread's serial loop, in float64 (deterministic)."""
import math

from numba import cuda

from crfrnn_np.cuda_kernel import F64, I64, gpu_kernel, grid_1d


@gpu_kernel(lambda f: [(f[:, :, ::1], f[:, ::1], I64, I64, F64, F64, F64[:, ::1])])
def log_prob_kernel(prob, labels, use_ignore, ignore, flt_one, flt_min, out):
    """Thread (o, i): ``out = log(max(p[o, label, i], FLT_MIN))`` in float64 (``flt_one`` = 1.0 promotes p),
    0 where the label is ignored."""
    t = cuda.grid(1)
    outer, _, inner = prob.shape
    if t >= outer * inner:
        return
    o = t // inner
    i = t - o * inner
    label = int(labels[o, i])
    if use_ignore and label == ignore:
        out[o, i] = 0.0
    else:
        out[o, i] = math.log(max(prob[o, label, i] * flt_one, flt_min))


@gpu_kernel(lambda f: [(F64[:, ::1], F64[::1])])
def sum_kernel(values, out):
    """One thread: ``out[0] = sum of values`` in row-major order."""
    if cuda.grid(1) != 0:
        return
    s = 0.0
    for o in range(values.shape[0]):
        for i in range(values.shape[1]):
            s += values[o, i]
    out[0] = s


@gpu_kernel(lambda f: [(f[:, :, ::1], f[:, ::1], I64, I64, f, f[:, :, ::1])])
def softmax_loss_backward_kernel(prob, labels, use_ignore, ignore, scale, dx):
    """Thread (o, k, i): ``dx = (p - [k == label]) scale`` at valid positions, 0 at ignored ones."""
    t = cuda.grid(1)
    outer, c, inner = prob.shape
    if t >= outer * c * inner:
        return
    i = t % inner
    k = (t // inner) % c
    o = t // (inner * c)
    label = int(labels[o, i])
    if use_ignore and label == ignore:
        dx[o, k, i] = 0
    elif k == label:
        dx[o, k, i] = (prob[o, k, i] - 1) * scale
    else:
        dx[o, k, i] = prob[o, k, i] * scale


@gpu_kernel(lambda f: [(f[:, :, ::1], f[:, ::1], I64, I64, I64, F64[:, ::1])])
def accuracy_kernel(scores, labels, use_ignore, ignore, top_k, out):
    """Thread (o, i): 1 when #{k : s_k >= s_label} <= top_k at a valid position, else 0."""
    t = cuda.grid(1)
    outer, c, inner = scores.shape
    if t >= outer * inner:
        return
    o = t // inner
    i = t - o * inner
    label = int(labels[o, i])
    if use_ignore and label == ignore:
        out[o, i] = 0.0
        return
    true_score = scores[o, label, i]
    at_least = 0
    for k in range(c):
        if scores[o, k, i] >= true_score:
            at_least += 1
    out[o, i] = 1.0 if at_least <= top_k else 0.0


def _ignore(layer):
    return (0, 0) if layer.ignore_label is None else (1, int(layer.ignore_label))


def _download_sum(values):
    """The float64 sum of a (outer, inner) float64 device array, one value back to the host."""
    out = cuda.device_array(1, "f8")
    sum_kernel[1, 1](values, out)
    return float(out.copy_to_host()[0])


def sum_log_prob(prob, labels, layer, scratch):
    """``sum over valid positions of log(max(p_label, FLT_MIN))``; ``scratch`` (outer, inner) float64."""
    from .softmax_loss import FLT_MIN
    if scratch.size:
        log_prob_kernel[grid_1d(scratch.size)](prob, labels, *_ignore(layer), 1.0, FLT_MIN, scratch)
    return _download_sum(scratch)


def softmax_loss_backward(prob, labels, layer, scale, dx):
    if dx.size:
        softmax_loss_backward_kernel[grid_1d(dx.size)](prob, labels, *_ignore(layer), dx.dtype.type(scale), dx)


def correct_count(scores, labels, layer, scratch):
    if scratch.size:
        accuracy_kernel[grid_1d(scratch.size)](scores, labels, *_ignore(layer), int(layer.top_k), scratch)
    return _download_sum(scratch)
