"""Device kernels of SoftmaxWithLoss and Accuracy (see softmax_loss.py and accuracy.py for the maths).

Scores are (outer, C, inner) views, labels the flat float label blob (a label is the value truncated to an
integer, as ``astype(int64)`` does on the host). Reductions over positions run in one block of
:data:`~crfrnn_np.config.THREADS_PER_BLOCK` threads: each thread strides over the positions, then a tree in
shared memory (``crfrnn_np.cuda_reduce.block_reduce``) adds the threads' sums (in float64, like the host's
float64 sum of the logs).

A label outside ``0..C-1`` (and not the ignore label) cannot raise on the device. The layers check the labels
on the host when the host copy is current (labels.py), and these kernels are the check only for labels that
exist on the device alone: the loss kernel writes NaN as the loss and the first bad position into ``state``
(the layer reads the loss back, then ``state``); Accuracy's count kernel writes the first bad position into
``bad`` (-1 when none; the layer reads it back) and NaN as the accuracy.
"""
import math

import numpy as np
from numba import cuda

from crfrnn_np.config import THREADS_PER_BLOCK
from crfrnn_np.cuda_kernel import F64, I32, I64, gpu_kernel, grid_1d
from crfrnn_np.cuda_reduce import MIN, SUM, block_reduce

#: Normalization modes as the kernel's integer argument.
MODES = {"FULL": 0, "VALID": 1, "BATCH_SIZE": 2, "NONE": 3}
_FLT_MIN = 1.1754943508222875e-38  # softmax_loss.FLT_MIN (a module constant: numba freezes it)


@gpu_kernel(lambda f: [(f[:, :, ::1], f[::1], I64, I64, I64, f[::1], F64[::1])])
def softmax_loss_kernel(prob, labels, use_ignore, ignore, mode, loss, state):
    """One block: ``loss[0] = -sum_valid log(max(p[o, label, i], FLT_MIN)) / max(1, normalizer)``;
    ``state = (normalizer, first bad position or -1)``."""
    sums = cuda.shared.array(THREADS_PER_BLOCK, np.float64)
    counts = cuda.shared.array(THREADS_PER_BLOCK, np.int64)
    bads = cuda.shared.array(THREADS_PER_BLOCK, np.int64)
    tid = cuda.threadIdx.x
    outer, c, inner = prob.shape
    n = outer * inner
    total = 0.0
    valid = 0
    bad = n
    for t in range(tid, n, THREADS_PER_BLOCK):
        label = int(labels[t])
        if use_ignore and label == ignore:
            continue
        if label < 0 or label >= c:
            bad = min(bad, t)
            continue
        o = t // inner
        total += math.log(max(float(prob[o, label, t - o * inner]), _FLT_MIN))
        valid += 1
    sums[tid] = total
    counts[tid] = valid
    bads[tid] = bad
    block_reduce(sums, SUM)
    block_reduce(counts, SUM)
    block_reduce(bads, MIN)
    if tid == 0:
        if mode == 0:
            norm = n
        elif mode == 1:
            norm = counts[0]
        elif mode == 2:
            norm = outer
        else:
            norm = 1
        normalizer = float(max(1, norm))
        state[0] = normalizer
        if bads[0] < n:
            state[1] = bads[0]
            loss[0] = math.nan
        else:
            state[1] = -1
            loss[0] = -sums[0] / normalizer


@gpu_kernel(lambda f: [(f[:, :, ::1], f[::1], I64, I64, f[::1], F64[::1], f, f, f[:, :, ::1])])
def softmax_loss_backward_kernel(prob, labels, use_ignore, ignore, top_diff, state, one, zero, dx):
    """Thread t over (o, k, i): ``dx = (p - [k == label]) * valid * f(top_diff / normalizer)``, step by step as
    the host does it (so the same rounding)."""
    t = cuda.grid(1)
    outer, c, inner = prob.shape
    if t >= outer * c * inner:
        return
    i = t % inner
    k = (t // inner) % c
    o = t // (inner * c)
    label = int(labels[o * inner + i])
    valid = not (use_ignore and label == ignore)
    v = prob[o, k, i]
    if valid and label == k:
        v = v - one
    v = v * (one if valid else zero)
    # the scale is a float64 (as on the host), rounded once to the values' type: stored, then read back
    dx[o, k, i] = top_diff[0] / state[0]
    dx[o, k, i] = v * dx[o, k, i]


@gpu_kernel(lambda f: [(f[:, :, ::1], f[::1], I64, I64, I64, I32[::1])])
def accuracy_status_kernel(scores, labels, use_ignore, ignore, top_k, status):
    """Thread t per position: ``status[t] = 2 label + correct``, -1 when ignored, -2 for a label out of range;
    correct when at most ``top_k`` scores are >= the label's (ties count against the label, Caffe's rule)."""
    t = cuda.grid(1)
    outer, c, inner = scores.shape
    if t >= outer * inner:
        return
    label = int(labels[t])
    if use_ignore and label == ignore:
        status[t] = -1
        return
    if label < 0 or label >= c:
        status[t] = -2
        return
    o = t // inner
    i = t - o * inner
    true_score = scores[o, label, i]
    at_least = 0
    for k in range(c):
        if scores[o, k, i] >= true_score:
            at_least += 1
    status[t] = 2 * label + (1 if at_least <= top_k else 0)


@gpu_kernel(lambda f: [(I32[::1], f[::1], f[::1], I64[::1])])
def accuracy_count_kernel(status, accuracy, per_class, bad):
    """Thread c < C: ``per_class[c] = correct_c / counted_c`` (0 for an absent class); thread C:
    ``accuracy[0] = correct / counted`` (0 when nothing counts, NaN after a label out of range) and ``bad[0]``
    = the first position of a label out of range, -1 when there is none."""
    c = cuda.grid(1)
    classes = per_class.shape[0]
    if c > classes:
        return
    counted = 0
    correct = 0
    first_bad = -1
    for t in range(status.shape[0]):
        s = status[t]
        if s == -2:
            if first_bad < 0:
                first_bad = t
        elif s >= 0 and (c == classes or s >> 1 == c):
            counted += 1
            correct += s & 1
    value = float(correct) / float(counted) if counted else 0.0
    if c == classes:
        accuracy[0] = math.nan if first_bad >= 0 else value
        bad[0] = first_bad
    else:
        per_class[c] = value


def softmax_loss(prob, labels, ignore_label, mode, loss, state):
    """Forward of the loss on device arrays: ``prob`` (outer, C, inner), flat ``labels``, ``loss`` (1,), ``state``
    (2,) float64."""
    use = 0 if ignore_label is None else 1
    softmax_loss_kernel[1, THREADS_PER_BLOCK](prob, labels, use, ignore_label or 0, MODES[mode], loss, state)


def softmax_loss_backward(prob, labels, ignore_label, top_diff, state, dx):
    """``dx`` (outer, C, inner) of the loss on the device."""
    if dx.size:
        t = dx.dtype.type
        use = 0 if ignore_label is None else 1
        softmax_loss_backward_kernel[grid_1d(dx.size)](prob, labels, use, ignore_label or 0, top_diff, state,
                                                       t(1), t(0), dx)


def accuracy(scores, labels, ignore_label, top_k, status, out, per_class, bad):
    """Accuracy (``out``, 1 element) and per-class accuracy (``per_class``, C elements) on the device;
    ``status`` is an int32 scratch array of one element per position, ``bad`` (1 element, int64) receives the
    first position of a label out of range (-1 when none)."""
    use = 0 if ignore_label is None else 1
    if status.size:
        accuracy_status_kernel[grid_1d(status.size)](scores, labels, use, ignore_label or 0, top_k, status)
    accuracy_count_kernel[grid_1d(per_class.size + 1)](status, out, per_class, bad)


__all__ = ["softmax_loss", "softmax_loss_backward", "accuracy", "MODES"]
