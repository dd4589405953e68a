"""The solvers' update on the device (the ``cuda`` backend): one thread per parameter element does Caffe's
sequence normalise -> regularise (L2) -> rule -> ``data -= step``, in the CPU's order of operations and in
the parameter's dtype, so the parameters, their diffs and the history never leave the device.

Only SGD (with momentum) has a device rule so far; the other solvers, L1 regularisation and gradient clipping
run on the host through the blobs' lazy synchronisation (correct, with copies)."""
from numba import cuda

from .cuda_kernel import I64, gpu_kernel, grid_1d
from .cuda_ops import flat


@gpu_kernel(lambda f: [(f[::1], f[::1], f[::1], I64, f, I64, f, f, f)])
def sgd_kernel(data, diff, history, normalize, inv_iter, regularize, decay, rate, momentum):
    """Thread i: ``g = diff/iter_size + decay data; h = momentum h + rate g; diff = h; data -= h``."""
    i = cuda.grid(1)
    if i >= data.shape[0]:
        return
    g = diff[i]
    if normalize:
        g = g * inv_iter
    if regularize:
        g = g + decay * data[i]
    h = history[i] * momentum
    h = h + rate * g
    history[i] = h
    diff[i] = h
    data[i] = data[i] - h


def sgd(data, diff, history, iter_size, decay, rate, momentum):
    """One SGD update of a parameter blob's device arrays (any shape, C-contiguous)."""
    if data.size:
        t = data.dtype.type
        sgd_kernel[grid_1d(data.size)](flat(data), flat(diff), flat(history), 1 if iter_size > 1 else 0,
                                       t(1.0 / iter_size), 1 if decay else 0, t(decay), t(rate), t(momentum))
