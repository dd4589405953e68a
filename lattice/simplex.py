"""The lattice's per-point maths as scalar ``numba.njit`` helpers, shared by the CPU and CUDA kernels.

The same functions serve both targets: the CPU build (:mod:`.cpu`) calls them inside its kernels, and the
``numba.cuda`` kernels of :mod:`.cuda` call the very same functions (numba compiles an njit function for
the CUDA target when a device kernel calls it). They are the NumPy reference's stages
(:func:`.reference.embed`, :func:`.reference.enclosing_simplex`) for one point, in the same float32
operation order, so the three backends agree bit for bit:

* :func:`elevate`: scale the d features and lift the point onto the plane ``sum(x) = 0`` of R^{d+1};
* :func:`enclosing_simplex`: the nearest remainder-0 vertex, the ranks of the residual, the barycentric
  weights (spec crfasrnn.md §3.3);
* :func:`key_coord`: one coordinate of the remainder-r vertex's key;
* :func:`round_half_even`: SSE's rounding, ties to even.
"""
import math

import numba
import numpy as np

__all__ = ["round_half_even", "elevate", "enclosing_simplex", "key_coord"]


@numba.njit(cache=True)
def round_half_even(x):
    """Nearest integer to float ``x``, ties to even (SSE ``cvtps2dq``); returns int64 (branch-free)."""
    i = np.int64(math.floor(x))
    frac = x - i
    return i + np.int64((frac > 0.5) | ((frac == 0.5) & ((i & 1) == 1)))


@numba.njit(cache=True)
def elevate(features, point, d, scale, elevated):
    """Elevate point ``point`` of flat float32 features (N*d) into ``elevated`` (d+1, float32).

    ``c_j = f_j scale_j``; from j = d down to 1: ``e_j = sum - j c_{j-1}``, ``sum += c_{j-1}``;
    ``e_0 = sum`` (all float32).
    """
    running = np.float32(0.0)
    base = point * d
    for j in range(d, 0, -1):
        c = features[base + j - 1] * scale[j - 1]
        elevated[j] = running - np.float32(j) * c
        running = running + c
    elevated[0] = running


@numba.njit(cache=True)
def enclosing_simplex(elevated, d, inv_d1, rem0, rank, bary):
    """Enclosing simplex of one elevated point.

    Parameters
    ----------
    elevated : (d+1,) float32
    d : int
    inv_d1 : float32
        float32(1 / (d+1)).
    rem0 : (d+1,) int, output
        Remainder-0 vertex after the plane correction.
    rank : (d+1,) int, output
        Rank of each coordinate's residual (0 = largest, ties by index) after the correction.
    bary : (d+2,) float32, output
        Barycentric weights in ``bary[0..d]``.
    """
    d1 = d + 1
    s = 0
    for i in range(d1):
        v = round_half_even(elevated[i] * inv_d1)
        rem0[i] = v * d1
        s += v
        rank[i] = 0
    for i in range(d):
        di = elevated[i] - np.float32(rem0[i])
        for j in range(i + 1, d1):
            dj = elevated[j] - np.float32(rem0[j])
            less = np.int32(di < dj)
            rank[i] += less
            rank[j] += 1 - less
    for i in range(d1):
        wrap = d1 * (np.int32(rank[i] + s < 0) - np.int32(rank[i] + s >= d1))
        rank[i] += s + wrap
        rem0[i] += wrap
    for i in range(d1 + 1):
        bary[i] = np.float32(0.0)
    for i in range(d1):
        w = (elevated[i] - np.float32(rem0[i])) * inv_d1
        bary[d - rank[i]] += w
        bary[d - rank[i] + 1] -= w
    bary[0] += np.float32(1.0) + bary[d1]


@numba.njit(cache=True, inline="always")
def key_coord(rem0_i, rank_i, r, d):
    """Coordinate i of the remainder-r vertex: ``rem0_i + r``, minus d+1 when ``rank_i > d - r``
    (branch-free: the comparison is data-dependent and mispredicted about half the time)."""
    return rem0_i + r - (d + 1) * np.int32(rank_i > d - r)
