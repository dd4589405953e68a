"""Fillers: initial values of parameter blobs from a ``FillerParameter`` (Caffe's ``filler.hpp``).

``fill(array, filler_param, rng=None)`` fills a NumPy array in place. Types (``filler_param.type``):

constant
    every element = ``value``.
uniform
    U(``min``, ``max``).
gaussian
    N(``mean``, ``std``); with ``sparse >= 0`` each element is kept with probability
    ``sparse / shape[0]`` (the number of outputs) and zeroed otherwise.
positive_unitball
    U(0, 1), then each slice along the first axis is divided by its sum (so it sums to 1).
xavier
    U(-sqrt(3/n), sqrt(3/n)) with ``n`` = fan_in, fan_out or their mean per ``variance_norm``;
    ``fan_in = count / shape[0]``, ``fan_out = count / shape[1]`` (``count`` for a 1-axis array).
msra
    N(0, sqrt(2/n)), ``n`` as for xavier.
bilinear
    4-D ``(out, in, K, K)``: every ``(out, in)`` kernel is the bilinear interpolation kernel
    ``(1 - |x/f - c|) * (1 - |y/f - c|)`` with ``f = ceil(K/2)``, ``c = (K - 1) / (2f)`` (upsampling by a
    Deconvolution of stride ``f``).

Only gaussian accepts ``sparse``; any other type with ``sparse`` set, or an unknown type, raises
:class:`crfrnn_np.NetError`. Values come from the shared stream :func:`crfrnn_np.random.rng` (not
bit-identical to Caffe's boost mt19937).
"""
import math

import numpy as np

from .errors import NetError
from .random import rng as shared_rng

FILLER_TYPES = ("constant", "uniform", "gaussian", "positive_unitball", "xavier", "msra", "bilinear")


def _fan(array, filler_param):
    count = array.size
    shape = array.shape
    fan_in = count / shape[0] if shape and shape[0] else count
    fan_out = count / shape[1] if len(shape) > 1 and shape[1] else count
    norm = filler_param.variance_norm
    if norm == "FAN_OUT":
        return fan_out
    if norm == "AVERAGE":
        return (fan_in + fan_out) / 2.0
    return fan_in


def fill(array, filler_param, rng=None, where=""):
    """Fill ``array`` in place as ``filler_param`` (a ``FillerParameter`` Message) says; return it.

    Parameters
    ----------
    array : ndarray (float32 or float64)
        The parameter blob's data, any shape (bilinear requires 4 axes with a square kernel).
    filler_param : crfrnn_np.proto.Message
        ``FillerParameter``: ``type``, ``value``, ``min``, ``max``, ``mean``, ``std``, ``sparse``,
        ``variance_norm``.
    rng : numpy.random.Generator, optional
        Default: the shared stream of :mod:`crfrnn_np.random`.
    where : str, optional
        Prefix for error messages (e.g. ``"layer 'conv1': weight_filler: "``).

    Raises
    ------
    NetError
        Unknown filler type, ``sparse`` with a type other than gaussian, or a shape the filler cannot fill.
    """
    gen = shared_rng() if rng is None else rng
    kind = filler_param.type
    loc = filler_param.where("type")
    prefix = (loc + ": " if loc else "") + where
    if kind not in FILLER_TYPES:
        raise NetError("%sunknown filler type '%s' (known: %s)" % (prefix, kind, ", ".join(FILLER_TYPES)))
    sparse = filler_param.sparse
    if kind != "gaussian" and sparse != -1 and filler_param.has("sparse"):
        raise NetError("%ssparse is only supported by the gaussian filler, not '%s'" % (prefix, kind))
    if array.size == 0:
        return array
    dtype = array.dtype
    if kind == "constant":
        array[...] = filler_param.value
    elif kind == "uniform":
        lo, hi = filler_param.min, filler_param.max
        if hi < lo:
            raise NetError("%suniform filler needs min <= max, got min %g, max %g" % (prefix, lo, hi))
        array[...] = gen.uniform(lo, hi, array.shape)
    elif kind == "gaussian":
        std = filler_param.std
        if std < 0:
            raise NetError("%sgaussian filler needs std >= 0, got %g" % (prefix, std))
        values = gen.normal(filler_param.mean, std, array.shape)
        if sparse >= 0:
            if array.ndim < 1:
                raise NetError("%ssparse gaussian filler needs at least one axis" % prefix)
            keep = sparse / float(array.shape[0])
            if not 0.0 <= keep <= 1.0:
                raise NetError("%ssparse (%d) must not exceed the number of outputs (%d)"
                               % (prefix, sparse, array.shape[0]))
            values *= gen.random(array.shape) < keep
        array[...] = values
    elif kind == "positive_unitball":
        values = gen.uniform(0.0, 1.0, array.shape)
        lead = array.shape[0] if array.ndim else 1
        flat = values.reshape(lead, -1)
        flat /= flat.sum(axis=1, keepdims=True)
        array[...] = flat.reshape(array.shape)
    elif kind == "xavier":
        scale = math.sqrt(3.0 / _fan(array, filler_param))
        array[...] = gen.uniform(-scale, scale, array.shape)
    elif kind == "msra":
        array[...] = gen.normal(0.0, math.sqrt(2.0 / _fan(array, filler_param)), array.shape)
    else:
        if array.ndim != 4 or array.shape[2] != array.shape[3]:
            raise NetError("%sbilinear filler needs a 4-axis blob with a square kernel, got shape %s"
                           % (prefix, "x".join(map(str, array.shape))))
        k = array.shape[3]
        f = math.ceil(k / 2.0)
        c = (k - 1) / (2.0 * f)
        t = 1.0 - np.abs(np.arange(k) / f - c)
        array[...] = np.outer(t, t).astype(dtype)
    return array
