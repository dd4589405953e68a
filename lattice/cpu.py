r"""Numba CPU kernels for the permutohedral lattice, and the scalar helpers the CUDA kernels share.

The maths is :mod:`crfrnn_np.lattice.reference`, stage by stage, with the same float32 operation order
(results agree bit for bit in float32 on the machines tested). Layout of a built lattice
(N points, d features, M vertices, d1 = d + 1):

==================  ==============  ===================================================================
array               shape, dtype    meaning
==================  ==============  ===================================================================
``vertex``          (N, d1) int32   vertex index of pixel i's remainder-r vertex
``weights``         (N, d1) f32     its barycentric weight
``neighbours``      (d1, M, 2) i32  vertices one step back / forward along axis j, -1 if absent
``splat_offsets``   (M+1,) int64    gather index: entries of vertex v are ``offsets[v]:offsets[v+1]``
``splat_pixel``     (N d1,) int32   the pixel of each entry (pixel order within a vertex)
``splat_weight``    (N d1,) f32     its weight
==================  ==============  ===================================================================

Splatting is a *gather* through the vertex -> (pixel, weight) index, so it runs in parallel over
vertices without races or atomics and each vertex sums its pixels in pixel order, exactly like the
C++ scatter loop. Blurring runs in parallel over vertices, slicing in parallel over pixels.

Value buffers are (M + 1, C) with row 0 the zero row that missing neighbours (-1 + 1) read.

The scalar helpers (:func:`round_half_even`, :func:`elevate`, :func:`enclosing_simplex`,
:func:`key_coord`, :func:`hash_key`) are plain ``numba.njit`` functions: the CPU build calls them, and
the ``numba.cuda`` kernels in :mod:`.cuda` call the very same functions (numba compiles njit functions
for the CUDA target when a kernel calls them).
"""
import math

import numba
import numpy as np

from .config import CPU_BLOCK
from .reference import scale_factors, slice_factor

__all__ = ["CpuLattice", "build", "splat", "blur", "slice_", "round_half_even", "elevate",
           "enclosing_simplex", "key_coord", "hash_key"]

HASH_MULTIPLIER = 1664525
_BLOCK = CPU_BLOCK


# ----------------------------------------------------------------------------------------------
# scalar maths, shared with cuda.py
# ----------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def round_half_even(x):
    """Nearest integer to float ``x``, ties to even (SSE ``cvtps2dq``); returns int64."""
    i = np.int64(math.floor(x))
    frac = x - i
    if frac > 0.5 or (frac == 0.5 and i % 2 != 0):
        i += 1
    return i


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
            if di < dj:
                rank[i] += 1
            else:
                rank[j] += 1
    for i in range(d1):
        rank[i] += s
        if rank[i] < 0:
            rank[i] += d1
            rem0[i] += d1
        elif rank[i] >= d1:
            rank[i] -= d1
            rem0[i] -= d1
    for i in range(d1 + 1):
        bary[i] = np.float32(0.0)
    for i in range(d1):
        w = (elevated[i] - np.float32(rem0[i])) * inv_d1
        bary[d - rank[i]] += w
        bary[d - rank[i] + 1] -= w
    bary[0] += np.float32(1.0) + bary[d1]


@numba.njit(cache=True)
def key_coord(rem0_i, rank_i, r, d):
    """Coordinate i of the remainder-r vertex: ``rem0_i + r``, minus d+1 when ``rank_i > d - r``."""
    if rank_i > d - r:
        return rem0_i + r - (d + 1)
    return rem0_i + r


@numba.njit(cache=True)
def hash_key(keys, base, d):
    """The C++ hash of the key ``keys[base:base+d]``: ``h = (h + k_i) * 1664525`` wrapping mod 2^64."""
    h = np.uint64(0)
    for i in range(d):
        h = (h + np.uint64(np.int64(keys[base + i]))) * np.uint64(HASH_MULTIPLIER)
    return h


# ----------------------------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------------------------

@numba.njit(cache=True, parallel=True)
def _embed_points(features, d, scale, inv_d1, rem0, rank, weights):
    """Per point (parallel in blocks): elevation, enclosing simplex and weights into the (N, d+1) outputs."""
    n = rem0.shape[0]
    d1 = d + 1
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for b in numba.prange(nblocks):
        elevated = np.empty(d1, np.float32)
        bary = np.empty(d1 + 1, np.float32)
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            elevate(features, i, d, scale, elevated)
            enclosing_simplex(elevated, d, inv_d1, rem0[i], rank[i], bary)
            for r in range(d1):
                weights[i, r] = bary[r]


@numba.njit(cache=True)
def _slot(h, shift):
    """Table slot of hash ``h``: the top bits of ``h`` times the 64-bit golden ratio (Fibonacci hashing,
    so that a power-of-two table uses all bits of the C++ hash)."""
    return np.int64((h * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(shift))


@numba.njit(cache=True)
def _find(table_keys, table_vertex, key, d, shift):
    """Slot of ``key`` in the open-addressing table (keys stored inline, linear probing), or of the empty
    slot that ends its probe sequence."""
    mask = table_vertex.shape[0] - 1
    slot = _slot(hash_key(key, 0, d), shift)
    while True:
        if table_vertex[slot] < 0:
            return slot
        base = slot * d
        same = True
        for i in range(d):
            if table_keys[base + i] != key[i]:
                same = False
                break
        if same:
            return slot
        slot = (slot + 1) & mask


@numba.njit(cache=True)
def _new_table(bits, d):
    return np.empty((1 << bits) * d, np.int32), np.full(1 << bits, -1, np.int32), 64 - bits


@numba.njit(cache=True)
def _insert_vertices(rem0, rank, d):
    """Serial hash-table build: vertex id per (point, remainder) in insertion order (point, then
    remainder). A point usually shares its simplex with the previous one, so each remainder's last key
    is checked before the table.

    Returns (vertex (N, d1) int32, keys (M*d,) int32 by vertex id, table_keys, table_vertex, shift, M).
    """
    n = rem0.shape[0]
    d1 = d + 1
    bits = 4
    while (1 << bits) < 2 * n:
        bits += 1
    table_keys, table_vertex, shift = _new_table(bits, d)
    keys = np.empty(max(16, n) * d, np.int32)
    m = 0
    vertex = np.empty((n, d1), np.int32)
    key = np.empty(d, np.int32)
    last = np.full((d1, d), np.iinfo(np.int32).min, np.int32)
    last_vertex = np.zeros(d1, np.int32)
    for i in range(n):
        for r in range(d1):
            same = True
            for c in range(d):
                key[c] = key_coord(rem0[i, c], rank[i, c], r, d)
                if key[c] != last[r, c]:
                    same = False
            if same:
                vertex[i, r] = last_vertex[r]
                continue
            if 2 * m >= table_vertex.shape[0]:
                # grow: double and rehash every stored key
                bits += 1
                table_keys, table_vertex, shift = _new_table(bits, d)
                for v in range(m):
                    slot = _find(table_keys, table_vertex, keys[v * d:(v + 1) * d], d, shift)
                    table_keys[slot * d:(slot + 1) * d] = keys[v * d:(v + 1) * d]
                    table_vertex[slot] = v
            slot = _find(table_keys, table_vertex, key, d, shift)
            if table_vertex[slot] < 0:
                if (m + 1) * d > keys.shape[0]:
                    grown = np.empty(2 * keys.shape[0], np.int32)
                    grown[:m * d] = keys[:m * d]
                    keys = grown
                keys[m * d:(m + 1) * d] = key
                table_keys[slot * d:(slot + 1) * d] = key
                table_vertex[slot] = m
                m += 1
            v = table_vertex[slot]
            vertex[i, r] = v
            last[r] = key
            last_vertex[r] = v
    return vertex, keys, table_keys, table_vertex, shift, m


@numba.njit(cache=True, parallel=True)
def _find_neighbours(table_keys, table_vertex, shift, keys, m, d):
    """Neighbours (d1, M, 2) of every vertex along every axis, -1 when absent.

    n1 = k - 1 except k_j + d at coordinate j (no special coordinate for j = d) is looked up; n2, the
    step the other way, is its inverse: ``n2_j(u) = v`` exactly when ``n1_j(v) = u``, so the second
    half of the table is filled from the first without a second lookup (no races: n1_j is injective).
    """
    d1 = d + 1
    neighbours = np.empty((d1, m, 2), np.int32)
    nblocks = (m + _BLOCK - 1) // _BLOCK
    for b in numba.prange(nblocks):
        n1 = np.empty(d, np.int32)
        for v in range(b * _BLOCK, min(m, (b + 1) * _BLOCK)):
            base = v * d
            for j in range(d1):
                for c in range(d):
                    n1[c] = keys[base + c] - 1
                if j < d:
                    n1[j] = keys[base + j] + d
                neighbours[j, v, 0] = table_vertex[_find(table_keys, table_vertex, n1, d, shift)]
                neighbours[j, v, 1] = -1
    for j in range(d1):
        for v in numba.prange(m):
            u = neighbours[j, v, 0]
            if u >= 0:
                neighbours[j, u, 1] = v
    return neighbours


@numba.njit(cache=True)
def _gather_index(vertex, weights, m):
    """Vertex -> (pixel, weight) lists by a counting sort; entries stay in pixel order per vertex."""
    n, d1 = vertex.shape
    offsets = np.zeros(m + 1, np.int64)
    for i in range(n):
        for r in range(d1):
            offsets[vertex[i, r] + 1] += 1
    for v in range(m):
        offsets[v + 1] += offsets[v]
    fill = offsets[:m].copy()
    pixel = np.empty(n * d1, np.int32)
    weight = np.empty(n * d1, np.float32)
    for i in range(n):
        for r in range(d1):
            v = vertex[i, r]
            e = fill[v]
            pixel[e] = i
            weight[e] = weights[i, r]
            fill[v] = e + 1
    return offsets, pixel, weight


def build(features):
    """Build the lattice arrays from checked (N, d) float32 features (N >= 1).

    Returns
    -------
    dict with ``vertex``, ``weights``, ``neighbours``, ``splat_offsets``, ``splat_pixel``,
    ``splat_weight`` (see the module table) and ``num_vertices``.
    """
    n, d = features.shape
    rem0 = np.empty((n, d + 1), np.int32)
    rank = np.empty((n, d + 1), np.int32)
    weights = np.empty((n, d + 1), np.float32)
    embed_points(features, rem0, rank, weights)
    return build_from_simplices(rem0, rank, weights)


def build_from_simplices(rem0, rank, weights):
    """Hash the vertices of every point's simplex and index them (the serial part of the build).

    Parameters
    ----------
    rem0, rank : ndarray, (N, d+1), int32
        From :func:`enclosing_simplex` per point.
    weights : ndarray, (N, d+1), float32

    Returns
    -------
    dict, as :func:`build`.
    """
    d = rem0.shape[1] - 1
    vertex, keys, table_keys, table_vertex, shift, m = _insert_vertices(rem0, rank, d)
    neighbours = _find_neighbours(table_keys, table_vertex, shift, keys, m, d)
    del table_keys, table_vertex, keys
    offsets, pixel, weight = _gather_index(vertex, weights, m)
    return dict(vertex=vertex, weights=weights, neighbours=neighbours, splat_offsets=offsets,
                splat_pixel=pixel, splat_weight=weight, num_vertices=m)


def embed_points(features, rem0, rank, weights):
    """Elevation, enclosing simplex and barycentric weights of every point (fills the (N, d+1) arrays)."""
    d = features.shape[1]
    _embed_points(features.reshape(-1), d, scale_factors(d), np.float32(1.0 / (d + 1)), rem0, rank, weights)


# ----------------------------------------------------------------------------------------------
# filter: splat -> blur -> slice
# ----------------------------------------------------------------------------------------------

@numba.njit(cache=True, parallel=True)
def _transpose(values, out):
    """(C, N) -> (N, C), parallel over pixel blocks."""
    c, n = values.shape
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for b in numba.prange(nblocks):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            for k in range(c):
                out[i, k] = values[k, i]


@numba.njit(cache=True, parallel=True)
def _splat(values_t, offsets, pixel, weight, buf):
    """``buf[v+1] = sum_e weight[e] values_t[pixel[e]]`` over the entries e of vertex v (gather; parallel
    over vertices; thread v writes row v+1 only)."""
    m = offsets.shape[0] - 1
    c = values_t.shape[1]
    for k in range(c):
        buf[0, k] = 0
    for v in numba.prange(m):
        row = buf[v + 1]
        for k in range(c):
            row[k] = 0
        for e in range(offsets[v], offsets[v + 1]):
            w = weight[e]
            src = values_t[pixel[e]]
            for k in range(c):
                row[k] += w * src[k]


@numba.njit(cache=True, parallel=True)
def _blur_axis(old, new, neighbours, j, half):
    """``new[v] = old[v] + half (old[n1] + old[n2])`` along axis j, parallel over vertices."""
    m = neighbours.shape[1]
    c = old.shape[1]
    for k in range(c):
        new[0, k] = 0
    for v in numba.prange(m):
        a = old[neighbours[j, v, 0] + 1]
        b = old[neighbours[j, v, 1] + 1]
        o = old[v + 1]
        out = new[v + 1]
        for k in range(c):
            out[k] = o[k] + half * (a[k] + b[k])


@numba.njit(cache=True, parallel=True)
def _slice(buf, vertex, weights, alpha, out):
    """``out[:, i] = sum_r (alpha w_ir) buf[vertex_ir + 1]`` (r in order), parallel over pixels; out is
    (C, N) channel-planar."""
    n, d1 = vertex.shape
    c = buf.shape[1]
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for b in numba.prange(nblocks):
        acc = np.empty(c, buf.dtype)
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            for k in range(c):
                acc[k] = 0
            for r in range(d1):
                wa = weights[i, r] * alpha
                row = buf[vertex[i, r] + 1]
                for k in range(c):
                    acc[k] += wa * row[k]
            for k in range(c):
                out[k, i] = acc[k]


def splat(values, lattice):
    """``V = S x`` for (C, N) values; returns the (M+1, C) buffer (row 0 zero)."""
    c, n = values.shape
    values_t = np.empty((n, c), values.dtype)
    _transpose(values, values_t)
    buf = np.empty((lattice["num_vertices"] + 1, c), values.dtype)
    _splat(values_t, lattice["splat_offsets"], lattice["splat_pixel"], lattice["splat_weight"], buf)
    return buf


def blur(buf, lattice, reverse=False, scratch=None):
    """``V <- B_j V`` for j = 0..d (d..0 when ``reverse``); returns the blurred buffer (may be ``scratch``
    or ``buf``, both are overwritten)."""
    neighbours = lattice["neighbours"]
    d1 = neighbours.shape[0]
    other = np.empty_like(buf) if scratch is None else scratch
    half = buf.dtype.type(0.5)
    for j in (range(d1 - 1, -1, -1) if reverse else range(d1)):
        _blur_axis(buf, other, neighbours, j, half)
        buf, other = other, buf
    return buf


def slice_(buf, lattice):
    """``y = alpha S^T V``; returns (C, N) in the buffer's dtype."""
    n = lattice["vertex"].shape[0]
    d = lattice["vertex"].shape[1] - 1
    out = np.empty((buf.shape[1], n), buf.dtype)
    _slice(buf, lattice["vertex"], lattice["weights"], buf.dtype.type(slice_factor(d)), out)
    return out


class CpuLattice:
    """The facade's ``"cpu"`` backend: :func:`build` once, then splat/blur/slice per call.

    Parameters
    ----------
    features : ndarray, (N, d), float32, C-contiguous, finite, N >= 1 (checked by the facade)
    """

    def __init__(self, features):
        self.arrays = build(features)
        self.num_vertices = self.arrays["num_vertices"]

    def filter(self, values, reverse=False):
        """``K x`` (``K^T x`` when ``reverse``) for C-contiguous (C, N) float32/float64 values."""
        buf = splat(values, self.arrays)
        buf = blur(buf, self.arrays, reverse)
        return slice_(buf, self.arrays)

    @property
    def nbytes(self):
        """Bytes held by the lattice arrays."""
        return sum(a.nbytes for a in self.arrays.values() if isinstance(a, np.ndarray))
