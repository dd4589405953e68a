r"""Numba CPU kernels for the permutohedral lattice, and the scalar helpers the CUDA kernels share.

The maths is :mod:`crfrnn_np.lattice.reference`, stage by stage, with the same float32 operation order
(results agree bit for bit with it in float32 and float64). Layout of a built lattice (N points,
d features, M vertices, d1 = d + 1):

==================  ==============  ===================================================================
array               shape, dtype    meaning
==================  ==============  ===================================================================
``vertex``          (N, d1) int32   vertex index of pixel i's remainder-r vertex
``weights``         (N, d1) f32     its barycentric weight
``neighbours``      (d1, M, 2) i32  vertices one step back / forward along axis j, -1 if absent
``entries``         (M,) int64      cumulative number of (pixel, remainder) entries of vertices 0..v
==================  ==============  ===================================================================

Build (:func:`build`): the points are cut into one chunk of consecutive points per numba thread.
In parallel, each chunk computes its points' simplices, then gives their vertex keys chunk-local ids
from its own open-addressing table; serially, the chunks' distinct keys are merged in chunk order,
which reproduces the serial insertion order (point, then remainder); in parallel again, the ids are
made global and every vertex looks up its neighbours in the (now read-only) table. Keys are packed
into as few int64 words as the coordinate ranges allow (one for the CRF's lattices), so hashing and
comparing a key is one multiplication and one comparison.

Filter (:func:`filter_`): values become an (M + 1, C) buffer of pixel-major vertex rows (row 0 the
zero row that missing neighbours, -1 + 1, read), so every inner loop runs over contiguous channels.
The splat is a scatter split by *vertex ownership*: task t adds only into the vertices it owns (about
the same number of entries per task, from the cumulative ``entries``), walking a list of its own
(pixel, remainder) entries made once per lattice (:func:`splat_plan`), which is race-free without
atomics and keeps every vertex's sum in pixel order, exactly like the C++ splat loop. The blur runs in parallel over vertices (one region per axis), the slice over pixels.

The scalar helpers (:func:`round_half_even`, :func:`elevate`, :func:`enclosing_simplex`,
:func:`key_coord`) are plain ``numba.njit`` functions: the CPU build calls them, and the ``numba.cuda``
kernels in :mod:`.cuda` call the very same functions (numba compiles njit functions for the CUDA
target when a kernel calls them). The CUDA splat is a gather, so :func:`build_from_simplices` also
returns the vertex -> (pixel, weight) index it needs.
"""
import math

import numba
import numpy as np

from .config import CPU_BLOCK, CPU_MIN_CHUNK
from .reference import scale_factors, slice_factor

__all__ = ["CpuLattice", "build", "build_from_simplices", "filter_", "splat", "splat_plan", "blur", "slice_",
           "slice_row", "round_half_even", "elevate", "enclosing_simplex", "key_coord"]


# ----------------------------------------------------------------------------------------------
# scalar maths, shared with cuda.py
# ----------------------------------------------------------------------------------------------

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


@numba.njit(cache=True)
def key_coord(rem0_i, rank_i, r, d):
    """Coordinate i of the remainder-r vertex: ``rem0_i + r``, minus d+1 when ``rank_i > d - r``
    (branch-free: the comparison is data-dependent and mispredicted about half the time)."""
    return rem0_i + r - (d + 1) * np.int32(rank_i > d - r)


# ----------------------------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------------------------
#
# Vertex keys are packed into W int64 words (W = 1 for the CRF's d = 2 and d = 5 lattices): coordinate
# q, minus the smallest value it can take, occupies ``width_q`` bits at ``shift_q`` of word ``word_q``.
# The ranges come from the points' remainder-0 vertices with the margins that every vertex key
# (rem0 - d1 .. rem0 + d) and every neighbour query (key - 1 .. key + d) needs, so a query never wraps
# into another field and packed keys are compared and hashed as W integers.

_GOLDEN = 0x9E3779B97F4A7C15


@numba.njit(cache=True)
def _hash_slot(keys, base, w, shift):
    """Table slot of the packed key ``keys[base:base+w]`` (multiplicative Fibonacci hashing)."""
    h = np.uint64(0)
    for q in range(w):
        h = (h ^ np.uint64(keys[base + q])) * np.uint64(_GOLDEN)
    return np.int64(h >> np.uint64(shift))


@numba.njit(cache=True)
def _find(table_keys, table_ids, key, base, w, shift):
    """Slot of the packed key ``key[base:base+w]`` in an open-addressing table with inline keys
    (linear probing), or of the empty slot (id -1) that ends its probe sequence."""
    mask = table_ids.shape[0] - 1
    slot = _hash_slot(key, base, w, shift)
    while True:
        if table_ids[slot] < 0:
            return slot
        same = True
        for q in range(w):
            if table_keys[slot * w + q] != key[base + q]:
                same = False
                break
        if same:
            return slot
        slot = (slot + 1) & mask


@numba.njit(cache=True)
def _insert(table_keys, table_ids, key, base, w, shift, new_id):
    """Id of the packed key ``key[base:base+w]``; inserted with ``new_id`` when absent."""
    slot = _find(table_keys, table_ids, key, base, w, shift)
    if table_ids[slot] < 0:
        for q in range(w):
            table_keys[slot * w + q] = key[base + q]
        table_ids[slot] = new_id
    return table_ids[slot]


@numba.njit(cache=True)
def _find1(table_keys, table_ids, key, shift):
    """:func:`_find` for one-word keys (the common case), with the key in a register."""
    mask = table_ids.shape[0] - 1
    slot = np.int64((np.uint64(key) * np.uint64(_GOLDEN)) >> np.uint64(shift))
    while table_ids[slot] >= 0 and table_keys[slot] != key:
        slot = (slot + 1) & mask
    return slot


@numba.njit(cache=True)
def _insert1(table_keys, table_ids, key, shift, new_id):
    """:func:`_insert` for one-word keys."""
    slot = _find1(table_keys, table_ids, key, shift)
    if table_ids[slot] < 0:
        table_keys[slot] = key
        table_ids[slot] = new_id
    return table_ids[slot]


@numba.njit(cache=True)
def _lookup1(table_keys, table_ids, key, shift):
    """Id of the one-word key ``key``, or -1 (the empty slot's id)."""
    return table_ids[_find1(table_keys, table_ids, key, shift)]


@numba.njit(cache=True)
def _table(keys, base, count, w, bits):
    """A table of 2^bits slots holding the packed keys ``keys[base + v*w ...]`` as ids v < count."""
    table_keys = np.empty((1 << bits) * w, np.int64)
    table_ids = np.full(1 << bits, -1, np.int32)
    for v in range(count):
        _insert(table_keys, table_ids, keys, base + v * w, w, 64 - bits, v)
    return table_keys, table_ids


@numba.njit(cache=True)
def _table_bits(count):
    """log2 of the smallest power-of-two table with at least 2 * count slots (load <= 1/2), >= 2^4."""
    bits = 4
    while (1 << bits) < 2 * count:
        bits += 1
    return bits


@numba.njit(cache=True, parallel=True)
def _embed_chunks(features, scale, inv_d1, starts, rem0, rank, weights, low, high):
    """Elevation, enclosing simplex and barycentric weights per point into the (N, d1) arrays; per chunk
    c the smallest and largest remainder-0 coordinates ``low[c], high[c]`` (parallel over chunks)."""
    d1 = rem0.shape[1]
    d = d1 - 1
    for c in numba.prange(starts.shape[0] - 1):
        elevated = np.empty(d1, np.float32)
        r0 = np.empty(d1, np.int32)
        rk = np.empty(d1, np.int32)
        bary = np.empty(d1 + 1, np.float32)
        # the bounds are kept in chunk-local arrays and written once: rows low[c] of different chunks share
        # a cache line, and updating them per point made the parallel loop slower than a serial one
        lo = np.full(d1, np.iinfo(np.int32).max, np.int32)
        hi = np.full(d1, np.iinfo(np.int32).min, np.int32)
        for i in range(starts[c], starts[c + 1]):
            elevate(features, i, d, scale, elevated)
            enclosing_simplex(elevated, d, inv_d1, r0, rk, bary)
            for r in range(d1):
                rem0[i, r] = r0[r]
                rank[i, r] = rk[r]
                weights[i, r] = bary[r]
                lo[r] = min(lo[r], r0[r])
                hi[r] = max(hi[r], r0[r])
        for r in range(d1):
            low[c, r] = lo[r]
            high[c, r] = hi[r]


@numba.njit(cache=True)
def _bounds(rem0, low, high):
    """Serial smallest and largest remainder-0 coordinate of every axis (simplices made elsewhere)."""
    for i in range(rem0.shape[0]):
        for q in range(rem0.shape[1]):
            low[0, q] = min(low[0, q], rem0[i, q])
            high[0, q] = max(high[0, q], rem0[i, q])


def _packing(low, high, d):
    """Field layout of packed keys from the remainder-0 bounds (see the section comment).

    Returns ``(origin, word, shift, words)``: int64 (d,) arrays and the number W of words.
    """
    origin = low[:d].astype(np.int64) - (d + 2)
    top = high[:d].astype(np.int64) + 2 * d
    word = np.empty(d, np.int64)
    shift = np.empty(d, np.int64)
    current, used = 0, 0
    for q in range(d):
        width = int(top[q] - origin[q]).bit_length()
        if used + width > 63:
            current, used = current + 1, 0
        word[q], shift[q] = current, used
        used += width
    return origin, word, shift, current + 1


@numba.njit(cache=True)
def _chunk_run(start, stop, rem0, rank, origin, word, shift, w, table_keys, table_ids, bits, m, last,
               last_id, keys, kbase, vertex):
    """Chunk-local ids of points ``start:stop`` until the table would pass half full; returns
    ``(next point, m)``. The table is never replaced inside this loop (growing it is the caller's
    business: a loop that reassigns its arrays compiles to much slower code)."""
    d1 = vertex.shape[1]
    d = d1 - 1
    size = table_ids.shape[0]
    shift_t = 64 - bits
    key = np.empty(w, np.int64)
    for i in range(start, stop):
        if 2 * (m + d1) > size:
            return i, m
        for r in range(d1):
            if w == 1:
                key1 = np.int64(0)
                for q in range(d):
                    key1 += (np.int64(key_coord(rem0[i, q], rank[i, q], r, d)) - origin[q]) << shift[q]
                if key1 != last[r]:
                    v = _insert1(table_keys, table_ids, key1, shift_t, m)
                    if v == m:
                        keys[kbase + m] = key1
                        m += 1
                    last_id[r] = v
                    last[r] = key1
            else:
                for q in range(w):
                    key[q] = 0
                for q in range(d):
                    coord = key_coord(rem0[i, q], rank[i, q], r, d)
                    key[word[q]] += (np.int64(coord) - origin[q]) << shift[q]
                same = True
                for q in range(w):
                    if key[q] != last[r * w + q]:
                        same = False
                if not same:
                    v = _insert(table_keys, table_ids, key, 0, w, shift_t, m)
                    if v == m:
                        for q in range(w):
                            keys[kbase + m * w + q] = key[q]
                        m += 1
                    last_id[r] = v
                    for q in range(w):
                        last[r * w + q] = key[q]
            vertex[i, r] = last_id[r]
    return stop, m


@numba.njit(cache=True, parallel=True)
def _chunk_vertices(starts, rem0, rank, origin, word, shift, w, vertex, keys, sizes):
    """Chunk-local vertex ids (parallel over chunks of consecutive points).

    Each of a point's d+1 vertex keys gets an id from the chunk's own table, in insertion order (point,
    then remainder); a point often shares vertices with the previous one, so each remainder's last key
    is checked first. Chunk c (points ``starts[c]:starts[c+1]``) owns the packed-key rows
    ``starts[c]*d1 + l`` of ``keys`` (flat, W words per row), writes ``vertex[i, r]`` = local id and
    ``sizes[c]`` = its number of distinct keys.
    """
    d1 = vertex.shape[1]
    for c in numba.prange(starts.shape[0] - 1):
        last = np.full(d1 * w, -1, np.int64)
        last_id = np.zeros(d1, np.int32)
        kbase = starts[c] * d1 * w
        bits = 12
        table_keys = np.empty((1 << bits) * w, np.int64)
        table_ids = np.full(1 << bits, -1, np.int32)
        i, m = starts[c], 0
        while True:
            i, m = _chunk_run(i, starts[c + 1], rem0, rank, origin, word, shift, w, table_keys, table_ids, bits,
                              m, last, last_id, keys, kbase, vertex)
            if i == starts[c + 1]:
                break
            bits += 1
            table_keys, table_ids = _table(keys, kbase, m, w, bits)
        sizes[c] = m


@numba.njit(cache=True)
def _merge_chunks(keys, starts, sizes, d1, w):
    """Global vertex ids (serial, O(distinct keys per chunk)): chunks merged in order, so the ids are
    the serial insertion order. Returns ``(gkeys (M*W,), m, table_keys, table_ids, bits, remap)`` with
    ``remap[row]`` the global id of chunk-local row ``row``."""
    total = 0
    for c in range(sizes.shape[0]):
        total += sizes[c]
    bits = _table_bits(total)
    table_keys = np.empty((1 << bits) * w, np.int64)
    table_ids = np.full(1 << bits, -1, np.int32)
    gkeys = np.empty(total * w, np.int64)
    remap = np.empty(keys.shape[0] // w, np.int32)
    m = 0
    for c in range(sizes.shape[0]):
        row0 = starts[c] * d1
        for l in range(sizes[c]):
            if w == 1:
                v = _insert1(table_keys, table_ids, keys[row0 + l], 64 - bits, m)
            else:
                v = _insert(table_keys, table_ids, keys, (row0 + l) * w, w, 64 - bits, m)
            if v == m:
                for q in range(w):
                    gkeys[m * w + q] = keys[(row0 + l) * w + q]
                m += 1
            remap[row0 + l] = v
    return gkeys[:m * w], m, table_keys, table_ids, bits, remap


@numba.njit(cache=True, parallel=True)
def _index_chunks(starts, remap, gkeys, table_keys, table_ids, bits, word, shift, vertex, neighbours, counts):
    """Global ids of chunk c's points (and ``counts[c, v]``, how many of its entries fall on vertex v) and
    the blur neighbours of the c-th block of vertices (task c).

    n1 = k - 1 except k_j + d at coordinate j (no special coordinate for j = d), i.e. the packed key
    minus one in every field plus d+1 in field j, is looked up in the (read-only) table; n2, the step
    the other way, is its inverse: ``n2_j(u) = v`` exactly when ``n1_j(v) = u``, so
    ``neighbours[j, u, 1] = v`` is written without a second lookup (no races: n1_j is injective;
    ``neighbours[:, :, 1]`` starts at -1).
    """
    d1 = vertex.shape[1]
    d = d1 - 1
    m = neighbours.shape[1]
    w = gkeys.shape[0] // max(m, 1)
    nchunks = starts.shape[0] - 1
    for c in numba.prange(nchunks):
        row0 = starts[c] * d1
        for i in range(starts[c], starts[c + 1]):
            for r in range(d1):
                v = remap[row0 + vertex[i, r]]
                vertex[i, r] = v
                counts[c, v] += 1
        ones = np.zeros(w, np.int64)
        for q in range(d):
            ones[word[q]] += np.int64(1) << shift[q]
        query = np.empty(w, np.int64)
        for v in range(m * c // nchunks, m * (c + 1) // nchunks):
            for j in range(d1):
                if w == 1:
                    query1 = gkeys[v] - ones[0]
                    if j < d:
                        query1 += np.int64(d1) << shift[j]
                    u = _lookup1(table_keys, table_ids, query1, 64 - bits)
                else:
                    for q in range(w):
                        query[q] = gkeys[v * w + q] - ones[q]
                    if j < d:
                        query[word[j]] += np.int64(d1) << shift[j]
                    u = table_ids[_find(table_keys, table_ids, query, 0, w, 64 - bits)]
                neighbours[j, v, 0] = u
                if u >= 0:
                    neighbours[j, u, 1] = v


@numba.njit(cache=True)
def _gather_index(vertex, weights, m):
    """Vertex -> (pixel, weight) lists by a counting sort, entries in pixel order per vertex (the CUDA
    splat's gather index)."""
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


def _chunks(n):
    """Point bounds (T+1,) int64 of the build's chunks: one per numba thread, at least
    ``config.CPU_MIN_CHUNK`` points each."""
    count = max(1, min(numba.get_num_threads(), n // CPU_MIN_CHUNK))
    return (np.arange(count + 1, dtype=np.int64) * n) // count


def _index(starts, rem0, rank, weights, low, high):
    """Vertex ids and neighbours from the per-point simplices (after the embedding)."""
    n, d1 = rem0.shape
    d = d1 - 1
    origin, word, shift, w = _packing(low.min(axis=0), high.max(axis=0), d)
    vertex = np.empty((n, d1), np.int32)
    keys = np.empty(n * d1 * w, np.int64)
    sizes = np.empty(starts.shape[0] - 1, np.int64)
    _chunk_vertices(starts, rem0, rank, origin, word, shift, w, vertex, keys, sizes)
    gkeys, m, table_keys, table_ids, bits, remap = _merge_chunks(keys, starts, sizes, d1, w)
    del keys
    neighbours = np.full((d1, m, 2), -1, np.int32)
    counts = np.zeros((starts.shape[0] - 1, m), np.int64)
    _index_chunks(starts, remap, gkeys, table_keys, table_ids, bits, word, shift, vertex, neighbours, counts)
    entries = np.cumsum(counts.sum(axis=0))
    return dict(vertex=vertex, weights=weights, neighbours=neighbours, entries=entries, num_vertices=m)


def build(features):
    """Build the lattice arrays from checked (N, d) float32 features (N >= 1).

    Passes: per chunk of points in parallel, the simplices (and the coordinate ranges that fix the key
    packing), then the chunk-local vertex ids; serially, the merge of the chunks' distinct keys into
    global ids (insertion order); in parallel again, the global ids and the blur neighbours.

    Returns
    -------
    dict with ``vertex``, ``weights``, ``neighbours`` (see the module table) and ``num_vertices``.
    """
    n, d = features.shape
    d1 = d + 1
    starts = _chunks(n)
    rem0 = np.empty((n, d1), np.int32)
    rank = np.empty((n, d1), np.int32)
    weights = np.empty((n, d1), np.float32)
    low = np.empty((starts.shape[0] - 1, d1), np.int32)
    high = np.empty_like(low)
    _embed_chunks(features.reshape(-1), scale_factors(d), np.float32(1.0 / d1), starts, rem0, rank, weights,
                  low, high)
    return _index(starts, rem0, rank, weights, low, high)


def build_from_simplices(rem0, rank, weights):
    """Build the lattice from simplices computed elsewhere (the CUDA embed kernel), with the gather index.

    Parameters
    ----------
    rem0, rank : ndarray, (N, d+1), int32
        From :func:`enclosing_simplex` per point.
    weights : ndarray, (N, d+1), float32

    Returns
    -------
    dict, as :func:`build`, plus ``splat_offsets``, ``splat_pixel``, ``splat_weight``.
    """
    rem0 = np.ascontiguousarray(rem0, np.int32)
    rank = np.ascontiguousarray(rank, np.int32)
    weights = np.ascontiguousarray(weights, np.float32)
    low = np.full((1, rem0.shape[1]), np.iinfo(np.int32).max, np.int32)
    high = np.full((1, rem0.shape[1]), np.iinfo(np.int32).min, np.int32)
    _bounds(rem0, low, high)
    lattice = _index(_chunks(rem0.shape[0]), rem0, rank, weights, low, high)
    offsets, pixel, weight = _gather_index(lattice["vertex"], weights, lattice["num_vertices"])
    lattice.update(splat_offsets=offsets, splat_pixel=pixel, splat_weight=weight)
    return lattice


# ----------------------------------------------------------------------------------------------
# filter: splat -> blur -> slice
# ----------------------------------------------------------------------------------------------
#
# Value buffers are (M+1, C), pixel-major rows of all channels, row 0 the zero row. Parallel regions:
#
# * splat: task t owns the vertices ``bounds[t]:bounds[t+1]`` (cut so that every task owns about the
#   same number of (pixel, vertex) entries) and adds ``w_ir x_i`` to the rows it owns, walking its own
#   entries in pixel order: race-free without atomics, and every vertex sums its pixels in pixel order,
#   as the C++ loop;
# * blur: one region per axis, parallel over blocks of vertices;
# * slice: parallel over blocks of pixels.

_BLOCK = CPU_BLOCK


@numba.njit(cache=True, parallel=True)
def _owned_entries(vertex, bounds, offsets, shift, packed):
    """Splat plan: task t's entries ``(i << shift) | r`` with ``bounds[t] <= vertex[i, r] < bounds[t+1]``,
    in pixel order, into ``packed[offsets[t]:offsets[t+1]]`` (parallel over tasks)."""
    n, d1 = vertex.shape
    for t in numba.prange(bounds.shape[0] - 1):
        lo = bounds[t]
        hi = bounds[t + 1]
        e = offsets[t]
        for i in range(n):
            for r in range(d1):
                v = vertex[i, r]
                if v >= lo and v < hi:
                    packed[e] = (i << shift) | r
                    e += 1


@numba.njit(cache=True, parallel=True)
def _splat(values, scale, vertex, weights, bounds, offsets, packed, shift, buf, pixel_major):
    """``buf[v+1, k] = sum_i w_iv (values[k, i] scale[i])`` (pixel order; no ``scale`` factor when
    ``scale`` is empty), ``buf[0] = 0``; task t owns rows ``bounds[t]+1 : bounds[t+1]+1`` and adds its
    plan's entries ``packed[offsets[t]:offsets[t+1]]`` (:func:`_owned_entries`). With ``pixel_major`` the
    values are (N, C) rows, ``values[i, k]``, instead of (C, N) planes."""
    c = buf.shape[1]
    scaled = scale.shape[0] > 0
    mask = (1 << shift) - 1
    for t in numba.prange(bounds.shape[0] - 1):
        lo = bounds[t]
        hi = bounds[t + 1]
        for v in range(lo + 1 if t > 0 else 0, hi + 1):
            for k in range(c):
                buf[v, k] = 0
        val = np.empty(c, buf.dtype)
        loaded = -1
        for e in range(offsets[t], offsets[t + 1]):
            i = packed[e] >> shift
            r = packed[e] & mask
            if i != loaded:                 # entries come in pixel order: load each pixel's values once
                if pixel_major:
                    for k in range(c):
                        val[k] = values[i, k]
                else:
                    for k in range(c):
                        val[k] = values[k, i]
                if scaled:
                    s = scale[i]
                    for k in range(c):
                        val[k] = val[k] * s
                loaded = i
            v = vertex[i, r] + 1
            w = weights[i, r]
            for k in range(c):
                buf[v, k] += w * val[k]


@numba.njit(cache=True, parallel=True)
def _blur_axis(old, new, neighbours, j, half):
    """``new[v+1] = old[v+1] + half (old[n1+1] + old[n2+1])`` along axis j, parallel over vertex blocks."""
    m = neighbours.shape[1]
    c = old.shape[1]
    for k in range(c):
        new[0, k] = 0
    for b in numba.prange((m + _BLOCK - 1) // _BLOCK):
        for v in range(b * _BLOCK, min(m, (b + 1) * _BLOCK)):
            n1 = neighbours[j, v, 0] + 1
            n2 = neighbours[j, v, 1] + 1
            for k in range(c):
                new[v + 1, k] = old[v + 1, k] + half * (old[n1, k] + old[n2, k])


@numba.njit(cache=True)
def slice_row(buf, vertex, weights, alpha, i, acc):
    """``acc = sum_r (alpha w_ir) buf[vertex_ir + 1]``: the slice of pixel i into ``acc`` (C,), r in order
    (shared with the fused mean-field kernels of ``layers.meanfield_fused``)."""
    for k in range(acc.shape[0]):
        acc[k] = 0
    for r in range(vertex.shape[1]):
        wa = weights[i, r] * alpha
        row = vertex[i, r] + 1
        for k in range(acc.shape[0]):
            acc[k] += wa * buf[row, k]


@numba.njit(cache=True, parallel=True)
def _slice(buf, vertex, weights, alpha, scale, out):
    """``out[k, i] = (sum_r (alpha w_ir) buf[vertex_ir + 1, k]) scale[i]`` (r in order; no ``scale``
    factor when ``scale`` is empty), parallel over pixel blocks."""
    n, d1 = vertex.shape
    c = buf.shape[1]
    scaled = scale.shape[0] > 0
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        acc = np.empty(c, buf.dtype)
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            slice_row(buf, vertex, weights, alpha, i, acc)
            if scaled:
                s = scale[i]
                for k in range(c):
                    out[k, i] = acc[k] * s
            else:
                for k in range(c):
                    out[k, i] = acc[k]


def splat_plan(lattice, tasks):
    """``(bounds, offsets, packed, shift)`` of a ``tasks``-way splat, made on first use and kept in the
    lattice dict: vertex bounds (tasks+1,) giving each task about the same number of entries, and each
    task's entries in pixel order (:func:`_owned_entries`), so that no task scans the others' pixels
    (which kept the splat from getting faster with a second thread)."""
    plan = lattice.get("splat_plan")
    if plan is not None and plan[0].shape[0] == tasks + 1:
        return plan
    cumulative = lattice["entries"]
    cuts = np.searchsorted(cumulative, cumulative[-1] * np.arange(1, tasks) / tasks)
    bounds = np.concatenate(([0], cuts, [cumulative.shape[0]])).astype(np.int64)
    counts = np.concatenate(([0], cumulative))[bounds]
    offsets = counts - counts[0]
    n, d1 = lattice["vertex"].shape
    shift = max(1, int(d1 - 1).bit_length())
    packed = np.empty(int(cumulative[-1]), np.int32 if (n << shift) < 2 ** 31 else np.int64)
    _owned_entries(lattice["vertex"], bounds, offsets, shift, packed)
    lattice["splat_plan"] = plan = (bounds, offsets, packed, shift)
    return plan


def _no_scale(dtype):
    """The empty scale array that means "no per-pixel factor" to :func:`_splat` and :func:`_slice`."""
    return np.empty(0, dtype)


def splat(values, lattice, scale=None, pixel_major=False, out=None, tasks=None):
    """``V = S (x diag(scale))`` for (C, N) values ((N, C) rows when ``pixel_major``; ``scale`` (N,) in the
    values' dtype, or None); returns the (M+1, C) buffer (row 0 zero), ``out`` when given. ``tasks``
    (default: numba's thread count) splits the vertices; the result does not depend on it."""
    c = values.shape[1] if pixel_major else values.shape[0]
    buf = np.empty((lattice["num_vertices"] + 1, c), values.dtype) if out is None else out
    bounds, offsets, packed, shift = splat_plan(lattice, tasks or numba.get_num_threads())
    _splat(values, _no_scale(values.dtype) if scale is None else scale, lattice["vertex"], lattice["weights"],
           bounds, offsets, packed, shift, buf, bool(pixel_major))
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


def slice_(buf, lattice, scale=None, out=None):
    """``y = (alpha S^T V) diag(scale)`` (``scale`` (N,) in the buffer's dtype, or None); returns (C, N) in
    the buffer's dtype, written into ``out`` when given (C-contiguous)."""
    n, d1 = lattice["vertex"].shape
    if out is None:
        out = np.empty((buf.shape[1], n), buf.dtype)
    _slice(buf, lattice["vertex"], lattice["weights"], buf.dtype.type(slice_factor(d1 - 1)),
           _no_scale(buf.dtype) if scale is None else scale, out)
    return out


def filter_(values, lattice, reverse=False, scale=None, out=None):
    """``K x`` (``K^T x`` when ``reverse``) for C-contiguous (C, N) float32/float64 values.

    With ``scale`` (N,) of the values' dtype, the forward filter returns ``diag(scale) K x`` (each output
    pixel times its factor, in the slice) and the reverse one ``K^T diag(scale) x`` (each input pixel
    times its factor, in the splat): bit for bit the separate NumPy multiplications. ``out`` (C, N),
    C-contiguous, receives the result (it may not be ``values``).
    """
    if reverse:
        return slice_(blur(splat(values, lattice, scale), lattice, True), lattice, None, out)
    return slice_(blur(splat(values, lattice), lattice, False), lattice, scale, out)


class CpuLattice:
    """The facade's ``"cpu"`` backend: :func:`build` once, then :func:`filter_` per call.

    Parameters
    ----------
    features : ndarray, (N, d), float32, C-contiguous, finite, N >= 1 (checked by the facade)
    """

    def __init__(self, features):
        self.arrays = build(features)
        self.num_vertices = self.arrays["num_vertices"]

    def filter(self, values, reverse=False, scale=None, out=None):
        """``K x`` (``K^T x`` when ``reverse``) for C-contiguous (C, N) float32/float64 values; ``scale`` and
        ``out`` as in :func:`filter_`."""
        return filter_(values, self.arrays, reverse, scale, out)

    @property
    def nbytes(self):
        """Bytes held by the lattice arrays."""
        plan = self.arrays.get("splat_plan", ())
        return sum(a.nbytes for a in list(self.arrays.values()) + list(plan) if isinstance(a, np.ndarray))
