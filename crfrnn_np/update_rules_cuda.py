"""The solvers' update rules on the device: :mod:`crfrnn_np.update_rules` as numba.cuda kernels.

One thread per parameter element. Each rule reads the gradient ``g`` (the parameter's diff after iter_size
normalisation and weight decay), updates its history buffer(s) in place and **overwrites** ``g`` with the step
``s`` that the solver then subtracts (``w <- w - s``), with the host rule's formulas and order of operations.
All arrays are flat C-contiguous device arrays of the parameter's dtype; the scalars are passed in that dtype
(as the host rules cast them), so float32 arithmetic stays float32. Also here: the L1 decay term and the sum of
squares of the gradient-clipping norm.
"""
import math

import numpy as np
from numba import cuda

from .config import THREADS_PER_BLOCK
from .cuda_kernel import F64, gpu_kernel, grid_1d
from .cuda_reduce import SUM, block_reduce

__all__ = ["sgd", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "add_l1", "sum_of_squares"]


@gpu_kernel(lambda f: [(f[::1], f[::1], f, f)])
def _sgd_kernel(g, h, rate, momentum):
    """``h = momentum h + rate g``; ``s = h``."""
    i = cuda.grid(1)
    if i < g.shape[0]:
        v = h[i] * momentum
        v = v + rate * g[i]
        h[i] = v
        g[i] = v


@gpu_kernel(lambda f: [(f[::1], f[::1], f, f, f)])
def _nesterov_kernel(g, h, rate, momentum, one):
    """``h' = momentum h + rate g``; ``s = (1 + momentum) h' - momentum h``."""
    i = cuda.grid(1)
    if i < g.shape[0]:
        old = h[i]
        v = old * momentum
        v = v + rate * g[i]
        h[i] = v
        g[i] = (one + momentum) * v - momentum * old


@gpu_kernel(lambda f: [(f[::1], f[::1], f, f)])
def _adagrad_kernel(g, h, rate, delta):
    """``h += g^2``; ``s = g / (sqrt(h) + delta) * rate``."""
    i = cuda.grid(1)
    if i < g.shape[0]:
        gi = g[i]
        v = h[i] + gi * gi
        h[i] = v
        g[i] = gi / (math.sqrt(v) + delta) * rate


@gpu_kernel(lambda f: [(f[::1], f[::1], f, f, f, f)])
def _rmsprop_kernel(g, h, rate, decay, delta, one):
    """``h = decay h + (1 - decay) g^2``; ``s = g / (sqrt(h) + delta) * rate``."""
    i = cuda.grid(1)
    if i < g.shape[0]:
        gi = g[i]
        v = h[i] * decay
        v = v + (one - decay) * (gi * gi)
        h[i] = v
        g[i] = gi / (math.sqrt(v) + delta) * rate


@gpu_kernel(lambda f: [(f[::1], f[::1], f[::1], f, f, f, f)])
def _adadelta_kernel(g, h1, h2, rate, momentum, delta, one):
    """``h1 = m h1 + (1-m) g^2``; ``u = g sqrt((h2 + delta) / (h1 + delta))``; ``h2 = m h2 + (1-m) u^2``;
    ``s = u rate``."""
    i = cuda.grid(1)
    if i < g.shape[0]:
        gi = g[i]
        a = h1[i] * momentum
        a = a + (one - momentum) * (gi * gi)
        h1[i] = a
        u = gi * math.sqrt((h2[i] + delta) / (a + delta))
        b = h2[i] * momentum
        b = b + (one - momentum) * (u * u)
        h2[i] = b
        g[i] = u * rate


@gpu_kernel(lambda f: [(f[::1], f[::1], f[::1], f, f, f, f, f)])
def _adam_kernel(g, m, v, corrected_rate, beta1, beta2, delta, one):
    """``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``; ``s = corrected_rate * m / (sqrt(v) + delta)``."""
    i = cuda.grid(1)
    if i < g.shape[0]:
        gi = g[i]
        a = m[i] * beta1
        a = a + (one - beta1) * gi
        m[i] = a
        b = v[i] * beta2
        b = b + (one - beta2) * (gi * gi)
        v[i] = b
        g[i] = corrected_rate * (a / (math.sqrt(b) + delta))


@gpu_kernel(lambda f: [(f, f[::1], f, f[::1])])
def _add_l1_kernel(decay, w, zero, g):
    """``g += decay * sign(w)`` (sign 0 at 0, as NumPy's)."""
    i = cuda.grid(1)
    if i < g.shape[0]:
        x = w[i]
        s = zero
        if x > zero:
            s = decay
        elif x < zero:
            s = -decay
        g[i] = g[i] + s


@gpu_kernel(lambda f: [(f[::1], F64[::1])])
def _sum_of_squares_kernel(g, out):
    """One block: ``out[0] += sum g^2`` in float64 (the host's accumulation type)."""
    sums = cuda.shared.array(THREADS_PER_BLOCK, np.float64)
    tid = cuda.threadIdx.x
    acc = 0.0
    for t in range(tid, g.shape[0], THREADS_PER_BLOCK):
        x = float(g[t])
        acc += x * x
    sums[tid] = acc
    block_reduce(sums, SUM)
    if tid == 0:
        out[0] += sums[0]


def _launch(kernel, g, *args):
    if g.size:
        kernel[grid_1d(g.size)](g, *args)


def _t(g, x):
    return g.dtype.type(x)


# The wrappers take the host rules' arguments (update_rules.py), device arrays in place of the NumPy ones, and
# write the step into ``g``.
def sgd(g, h, rate, momentum):
    _launch(_sgd_kernel, g, h, _t(g, rate), _t(g, momentum))


def nesterov(g, h, rate, momentum):
    _launch(_nesterov_kernel, g, h, _t(g, rate), _t(g, momentum), _t(g, 1))


def adagrad(g, h, rate, delta):
    _launch(_adagrad_kernel, g, h, _t(g, rate), _t(g, delta))


def rmsprop(g, h, rate, rms_decay, delta):
    _launch(_rmsprop_kernel, g, h, _t(g, rate), _t(g, rms_decay), _t(g, delta), _t(g, 1))


def adadelta(g, h1, h2, rate, momentum, delta):
    _launch(_adadelta_kernel, g, h1, h2, _t(g, rate), _t(g, momentum), _t(g, delta), _t(g, 1))


def adam(g, m, v, rate, beta1, beta2, delta, t):
    correction = math.sqrt(1.0 - float(beta2) ** t) / (1.0 - float(beta1) ** t)
    _launch(_adam_kernel, g, m, v, _t(g, rate * correction), _t(g, beta1), _t(g, beta2), _t(g, delta), _t(g, 1))


def add_l1(decay, w, g):
    """``g += decay * sign(w)`` on the device."""
    if g.size:
        _add_l1_kernel[grid_1d(g.size)](_t(g, decay), w, _t(g, 0), g)


def sum_of_squares(arrays):
    """``sum over the arrays of sum(a^2)`` in float64, summed on the device; one scalar comes back."""
    from . import cuda_ops
    out = cuda_ops.empty(1, np.float64)
    cuda_ops.fill(out, 0)
    for a in arrays:
        if a.size:
            _sum_of_squares_kernel[1, THREADS_PER_BLOCK](a, out)
    return float(out.copy_to_host()[0])
