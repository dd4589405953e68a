r"""The permutohedral lattice on the CPU: numba kernels for the build and the filter.

The maths is :mod:`crfrnn_np.lattice.reference`, stage by stage, with the same float32 operation order
(results agree bit for bit with it in float32 and float64). Every kernel is a serial loop over a range of
points, vertices or tasks (:func:`crfrnn_np.kernel.cpu_kernel`); :func:`crfrnn_np.threads.parallel_for` runs
the ranges on threads. Layout of a built lattice (N points, d features, M vertices, d1 = d + 1):

==================  ==============  ===================================================================
array               shape, dtype    meaning
==================  ==============  ===================================================================
``vertex``          (N, d1) int32   vertex index of pixel i's remainder-r vertex
``weights``         (N, d1) f32     its barycentric weight
``neighbours``      (d1, M, 2) i32  vertices one step back / forward along axis j, -1 if absent
``entries``         (M,) int64      cumulative number of (pixel, remainder) entries of vertices 0..v
==================  ==============  ===================================================================

Build (:func:`build`), three passes:

1. **embed** (threads over points): each point's simplex -- elevation, remainder-0 vertex, ranks,
   barycentric weights (the shared helpers of :mod:`.simplex`);
2. **number** (threads over chunks of points, then one merge): every distinct vertex key gets an id in the
   reference's insertion order (point, then remainder), through the hash table of :mod:`.hash_table`: each
   chunk numbers its own points with its own table, then the chunks' distinct keys are merged in chunk
   order, which reproduces the serial order; a point often shares vertices with the previous one, so each
   remainder's last key is checked first;
3. **neighbours** (threads over vertices): the vertex one step back along each axis is looked up in the
   (now read-only) table; the step forward is its inverse, written without a second lookup.

Filter (:func:`filter_`): values become an (M + 1, C) buffer of pixel-major vertex rows (row 0 the zero
row that missing neighbours, -1 + 1, read), so every inner loop runs over contiguous channels. The splat
is a scatter split by *vertex ownership*: task t adds only into the vertices it owns (about the same
number of entries per task, from the cumulative ``entries``), walking a list of its own (pixel, remainder)
entries made once per lattice (:func:`splat_plan`): race-free without atomics, and every vertex sums its
pixels in pixel order, as the C++ loop. The blur runs over blocks of vertices (one pass per axis), the
slice over blocks of pixels.

The CUDA splat is a gather, so :func:`build_from_simplices` also returns the vertex -> (pixel, weight)
index it needs.
"""
import numba
import numpy as np

from crfrnn_np.kernel import cpu_kernel
from crfrnn_np.threads import num_threads, parallel_for

from crfrnn_np.config import CPU_BLOCK, CPU_MIN_CHUNK, CPU_NUMBER_MIN_CHUNK
from .hash_table import empty_table, fill, fill1, find, insert, insert1, key_packing, table_bits, find1
from .reference import scale_factors, slice_factor
from .simplex import elevate, enclosing_simplex, key_coord, round_half_even

__all__ = ["CpuLattice", "build", "build_from_simplices", "filter_", "splat", "splat_plan", "blur", "slice_",
           "slice_row", "round_half_even", "elevate", "enclosing_simplex", "key_coord"]


# ----------------------------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------------------------

@cpu_kernel
def _embed(features, scale, inv_d1, rem0, rank, weights, low, high, b0, b1):
    """Elevation, enclosing simplex and barycentric weights of the points of blocks ``b0..b1-1`` (``CPU_MIN_CHUNK``
    points each; flat (N*d) float32 features) into the (N, d1) arrays, and each block's smallest and largest
    remainder-0 coordinates into ``low[b]``, ``high[b]`` (they fix the key packing)."""
    n, d1 = rem0.shape
    d = d1 - 1
    elevated = np.empty(d1, np.float32)
    r0 = np.empty(d1, np.int32)
    rk = np.empty(d1, np.int32)
    bary = np.empty(d1 + 1, np.float32)
    for b in range(b0, b1):
        first = b * CPU_MIN_CHUNK
        for i in range(first, min(n, first + CPU_MIN_CHUNK)):
            elevate(features, i, d, scale, elevated)
            enclosing_simplex(elevated, d, inv_d1, r0, rk, bary)
            for r in range(d1):
                rem0[i, r] = r0[r]
                rank[i, r] = rk[r]
                weights[i, r] = bary[r]
                if i == first or r0[r] < low[b, r]:
                    low[b, r] = r0[r]
                if i == first or r0[r] > high[b, r]:
                    high[b, r] = r0[r]


@cpu_kernel
def _number1(rem0, rank, origin, shift, start, table_keys, table_ids, shift_t, m, keys, vertex, last, last_id):
    """Vertex ids of points ``start..`` with one-word keys, in insertion order (point, then remainder), until
    the table would pass half full; returns ``(next point, m)``. ``keys[v]`` receives vertex v's key.
    ``last`` and ``last_id`` (d1,) hold each remainder's previous key (-1 at first) and its id."""
    n, d1 = vertex.shape
    d = d1 - 1
    size = table_ids.shape[0]
    for i in range(start, n):
        if 2 * (m + d1) > size:
            return i, m
        for r in range(d1):
            key = np.int64(0)
            for q in range(d):
                key += (np.int64(key_coord(rem0[i, q], rank[i, q], r, d)) - origin[q]) << shift[q]
            if key != last[r]:
                v = insert1(table_keys, table_ids, key, shift_t, m)
                if v == m:
                    keys[m] = key
                    m += 1
                last_id[r] = v
                last[r] = key
            vertex[i, r] = last_id[r]
    return n, m


@cpu_kernel
def _number(rem0, rank, origin, word, shift, w, start, table_keys, table_ids, shift_t, m, keys, vertex):
    """:func:`_number1` for W-word keys (``keys[v*w : (v+1)*w]``)."""
    n, d1 = vertex.shape
    d = d1 - 1
    size = table_ids.shape[0]
    key = np.empty(w, np.int64)
    for i in range(start, n):
        if 2 * (m + d1) > size:
            return i, m
        for r in range(d1):
            key[:] = 0
            for q in range(d):
                key[word[q]] += (np.int64(key_coord(rem0[i, q], rank[i, q], r, d)) - origin[q]) << shift[q]
            v = insert(table_keys, table_ids, key, 0, w, shift_t, m)
            if v == m:
                keys[m * w:(m + 1) * w] = key
                m += 1
            vertex[i, r] = v
    return n, m


def _number_points(rem0, rank, packing, keys, vertex):
    """Ids of the distinct vertex keys of some points (all of them, or one chunk), in insertion order.

    A table sized for the points, doubled and refilled whenever it is half full (growing inside the numba loop
    would make the loop reassign its arrays, which numba compiles to much slower code). Returns
    ``(m, (table_keys, table_ids, bits))``; ``keys`` receives the m distinct keys (W words each).
    """
    origin, word, shift, w = packing
    n, d1 = vertex.shape
    bits = table_bits(max(n, 1))
    table_keys, table_ids = empty_table(bits, w)
    last, last_id = np.full(d1, -1, np.int64), np.zeros(d1, np.int32)
    i = m = 0
    while True:
        if w == 1:
            i, m = _number1(rem0, rank, origin, shift, i, table_keys, table_ids, 64 - bits, m, keys, vertex, last,
                            last_id)
        else:
            i, m = _number(rem0, rank, origin, word, shift, w, i, table_keys, table_ids, 64 - bits, m, keys, vertex)
        if i == n:
            return m, (table_keys, table_ids, bits)
        bits += 1                                        # half full: a table twice the size, refilled
        table_keys, table_ids = empty_table(bits, w)
        if w == 1:
            fill1(table_keys, table_ids, keys, m, 64 - bits)
        else:
            fill(table_keys, table_ids, keys, m, w, 64 - bits)


def _number_chunks(rem0, rank, packing, starts, keys, vertex, sizes, c0, c1):
    """Chunks ``c0..c1-1`` of consecutive points numbered on their own (chunk-local ids and tables); chunk c
    writes its points' rows of ``vertex``, its keys at ``keys[starts[c] * d1 * W ...]`` and ``sizes[c]``.
    Plain Python around :func:`_number1`, which releases the GIL: the chunks run on the kernels' threads."""
    d1, w = rem0.shape[1], packing[3]
    for c in range(c0, c1):
        lo, hi = starts[c], starts[c + 1]
        sizes[c], _ = _number_points(rem0[lo:hi], rank[lo:hi], packing, keys[lo * d1 * w:hi * d1 * w],
                                     vertex[lo:hi])


@cpu_kernel
def _merge1(keys, starts, sizes, d1, table_keys, table_ids, shift_t, gkeys, remap):
    """Global ids of the chunks' distinct one-word keys, chunks merged in order, so the ids are the serial
    insertion order; ``remap[row]`` = global id of chunk-local key row ``row`` (chunk c's rows start at
    ``starts[c] * d1``). Returns M."""
    m = 0
    for c in range(sizes.shape[0]):
        row0 = starts[c] * d1
        for k in range(sizes[c]):
            v = insert1(table_keys, table_ids, keys[row0 + k], shift_t, m)
            if v == m:
                gkeys[m] = keys[row0 + k]
                m += 1
            remap[row0 + k] = v
    return m


@cpu_kernel
def _remap(vertex, starts, remap, counts, c0, c1):
    """Chunk-local vertex ids of chunks ``c0..c1-1`` made global, and ``counts[c, v]``: how many of chunk c's
    (point, remainder) entries fall on vertex v."""
    d1 = vertex.shape[1]
    for c in range(c0, c1):
        row0 = starts[c] * d1
        for i in range(starts[c], starts[c + 1]):
            for r in range(d1):
                v = remap[row0 + vertex[i, r]]
                vertex[i, r] = v
                counts[c, v] += 1


@cpu_kernel
def _neighbours1(keys, table_keys, table_ids, shift_t, step, neighbours, lo, hi):
    """Blur neighbours of vertices ``lo..hi-1`` (one-word keys).

    n1 = k - 1 except k_j + d at coordinate j (no special coordinate for j = d), i.e. the packed key plus
    ``step[j]`` (minus one in every field, plus d+1 in field j), is looked up; n2, the step the other way,
    is its inverse: ``n2_j(u) = v`` exactly when ``n1_j(v) = u``, so ``neighbours[j, u, 1] = v`` is written
    here (no races: n1_j is injective; ``neighbours`` starts at -1)."""
    d1 = neighbours.shape[0]
    for v in range(lo, hi):
        for j in range(d1):
            u = table_ids[find1(table_keys, table_ids, keys[v] + step[j, 0], shift_t)]
            neighbours[j, v, 0] = u
            if u >= 0:
                neighbours[j, u, 1] = v


@cpu_kernel
def _neighbours(keys, w, table_keys, table_ids, shift_t, step, neighbours, lo, hi):
    """:func:`_neighbours1` for W-word keys."""
    d1 = neighbours.shape[0]
    query = np.empty(w, np.int64)
    for v in range(lo, hi):
        for j in range(d1):
            for q in range(w):
                query[q] = keys[v * w + q] + step[j, q]
            u = table_ids[find(table_keys, table_ids, query, 0, w, shift_t)]
            neighbours[j, v, 0] = u
            if u >= 0:
                neighbours[j, u, 1] = v


def _chunks(n):
    """Point bounds of the numbering's chunks: one per thread, at least ``CPU_NUMBER_MIN_CHUNK`` points each."""
    count = max(1, min(num_threads(), n // CPU_NUMBER_MIN_CHUNK))
    return np.asarray([n * k // count for k in range(count + 1)], np.int64)


def _index(rem0, rank, weights, low, high):
    """Vertex ids, neighbours and cumulative per-vertex entry counts from the per-point simplices.

    Numbering: with one-word keys and more than one chunk, each chunk numbers its points on its own thread,
    then the chunks' distinct keys are merged in chunk order (which reproduces the serial insertion order)
    and the local ids remapped; otherwise one pass over all points.
    """
    n, d1 = rem0.shape
    d = d1 - 1
    packing = key_packing(low, high, d)
    w = packing[3]
    vertex = np.empty((n, d1), np.int32)
    keys = np.empty(n * d1 * w, np.int64)
    starts = _chunks(n) if w == 1 else np.asarray([0, n], np.int64)
    if starts.shape[0] > 2:
        sizes = np.empty(starts.shape[0] - 1, np.int64)
        parallel_for(_number_chunks, sizes.shape[0], rem0, rank, packing, starts, keys, vertex, sizes)
        bits = table_bits(int(sizes.sum()))
        table_keys, table_ids = empty_table(bits)
        gkeys = np.empty(int(sizes.sum()), np.int64)
        remap = np.empty(n * d1, np.int32)
        m = _merge1(keys, starts, sizes, d1, table_keys, table_ids, 64 - bits, gkeys, remap)
        keys = gkeys[:m]
        counts = np.zeros((sizes.shape[0], m), np.int64)
        parallel_for(_remap, sizes.shape[0], vertex, starts, remap, counts)
        counts = counts.sum(axis=0)
    else:
        m, (table_keys, table_ids, bits) = _number_points(rem0, rank, packing, keys, vertex)
        keys = keys[:m * w]
        counts = np.bincount(vertex.reshape(-1), minlength=m)
    step = np.zeros((d1, w), np.int64)                   # minus one in every field, plus d+1 in field j
    for q in range(d):
        step[:, packing[1][q]] -= np.int64(1) << packing[2][q]
        step[q, packing[1][q]] += np.int64(d1) << packing[2][q]
    neighbours = np.full((d1, m, 2), -1, np.int32)
    if w == 1:
        parallel_for(_neighbours1, m, keys, table_keys, table_ids, 64 - bits, step, neighbours, grain=CPU_BLOCK)
    else:
        parallel_for(_neighbours, m, keys, w, table_keys, table_ids, 64 - bits, step, neighbours, grain=CPU_BLOCK)
    return dict(vertex=vertex, weights=weights, neighbours=neighbours, entries=np.cumsum(counts), num_vertices=m,
                key_words=w)


def build(features):
    """Build the lattice arrays from checked (N, d) float32 features (N >= 1).

    Returns
    -------
    dict with ``vertex``, ``weights``, ``neighbours``, ``entries`` (see the module table),
    ``num_vertices`` and ``key_words`` (W, the int64 words of a packed key).
    """
    n, d = features.shape
    d1 = d + 1
    rem0 = np.empty((n, d1), np.int32)
    rank = np.empty((n, d1), np.int32)
    weights = np.empty((n, d1), np.float32)
    blocks = (n + CPU_MIN_CHUNK - 1) // CPU_MIN_CHUNK
    low = np.empty((blocks, d1), np.int32)
    high = np.empty((blocks, d1), np.int32)
    parallel_for(_embed, blocks, np.ascontiguousarray(features).reshape(-1), scale_factors(d), np.float32(1.0 / d1),
                 rem0, rank, weights, low, high)
    return _index(rem0, rank, weights, low.min(axis=0), high.max(axis=0))


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
    fill_at = offsets[:m].copy()
    pixel = np.empty(n * d1, np.int32)
    weight = np.empty(n * d1, np.float32)
    for i in range(n):
        for r in range(d1):
            v = vertex[i, r]
            e = fill_at[v]
            pixel[e] = i
            weight[e] = weights[i, r]
            fill_at[v] = e + 1
    return offsets, pixel, weight


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
    lattice = _index(rem0, rank, weights, rem0.min(axis=0), rem0.max(axis=0))
    offsets, pixel, weight = _gather_index(lattice["vertex"], weights, lattice["num_vertices"])
    lattice.update(splat_offsets=offsets, splat_pixel=pixel, splat_weight=weight)
    return lattice


# ----------------------------------------------------------------------------------------------
# filter: splat -> blur -> slice
# ----------------------------------------------------------------------------------------------
#
# Value buffers are (M+1, C), pixel-major rows of all channels, row 0 the zero row. Work split:
#
# * splat: task t owns the vertices ``bounds[t]:bounds[t+1]`` (cut so that every task owns about the
#   same number of (pixel, vertex) entries) and adds ``w_ir x_i`` to the rows it owns, walking its own
#   entries in pixel order: race-free without atomics, and every vertex sums its pixels in pixel order,
#   as the C++ loop;
# * blur: one pass per axis, over blocks of vertices;
# * slice: over blocks of pixels.


@cpu_kernel
def _owned_entries(vertex, bounds, offsets, shift, packed, t0, t1):
    """Splat plan of tasks ``t0..t1-1``: task t's entries ``(i << shift) | r`` with ``bounds[t] <= vertex[i, r]
    < bounds[t+1]``, in pixel order, into ``packed[offsets[t]:offsets[t+1]]``."""
    n, d1 = vertex.shape
    for t in range(t0, t1):
        lo = bounds[t]
        hi = bounds[t + 1]
        e = offsets[t]
        for i in range(n):
            for r in range(d1):
                v = vertex[i, r]
                if v >= lo and v < hi:
                    packed[e] = (i << shift) | r
                    e += 1


@cpu_kernel
def _splat(values, scale, vertex, weights, bounds, offsets, packed, shift, buf, pixel_major, t0, t1):
    """Tasks ``t0..t1-1`` of ``buf[v+1, k] = sum_i w_iv (values[k, i] scale[i])`` (pixel order; no ``scale``
    factor when ``scale`` is empty), ``buf[0] = 0``: task t owns rows ``bounds[t]+1 : bounds[t+1]+1`` and
    adds its plan's entries ``packed[offsets[t]:offsets[t+1]]`` (:func:`_owned_entries`). With
    ``pixel_major`` the values are (N, C) rows, ``values[i, k]``, instead of (C, N) planes."""
    c = buf.shape[1]
    scaled = scale.shape[0] > 0
    mask = (1 << shift) - 1
    val = np.empty(c, buf.dtype)
    for t in range(t0, t1):
        lo = bounds[t]
        hi = bounds[t + 1]
        for v in range(lo + 1 if t > 0 else 0, hi + 1):
            for k in range(c):
                buf[v, k] = 0
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


@cpu_kernel
def _blur_axis(old, new, neighbours, j, half, lo, hi):
    """``new[v+1] = old[v+1] + half (old[n1+1] + old[n2+1])`` along axis j for vertices ``lo..hi-1``
    (the zero row 0 with the first block)."""
    c = old.shape[1]
    if lo == 0:
        for k in range(c):
            new[0, k] = 0
    for v in range(lo, hi):
        n1 = neighbours[j, v, 0] + 1
        n2 = neighbours[j, v, 1] + 1
        for k in range(c):
            new[v + 1, k] = old[v + 1, k] + half * (old[n1, k] + old[n2, k])


@numba.njit(cache=True, nogil=True, inline="always")
def slice_row(buf, vertex, weights, alpha, i, acc):
    """``acc = sum_r (alpha w_ir) buf[vertex_ir + 1]``: the slice of pixel i into ``acc`` (C,), r in order
    (shared with the FUSED mean-field kernels of ``crfrnn_np.fused.meanfield``)."""
    for k in range(acc.shape[0]):
        acc[k] = 0
    for r in range(vertex.shape[1]):
        wa = weights[i, r] * alpha
        row = vertex[i, r] + 1
        for k in range(acc.shape[0]):
            acc[k] += wa * buf[row, k]


@cpu_kernel
def _slice(buf, vertex, weights, alpha, scale, out, lo, hi):
    """``out[k, i] = (sum_r (alpha w_ir) buf[vertex_ir + 1, k]) scale[i]`` for pixels ``lo..hi-1`` (r in
    order; no ``scale`` factor when ``scale`` is empty)."""
    c = buf.shape[1]
    scaled = scale.shape[0] > 0
    acc = np.empty(c, buf.dtype)
    for i in range(lo, hi):
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
    task's entries in pixel order (:func:`_owned_entries`), so that no task scans the others' pixels."""
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
    parallel_for(_owned_entries, tasks, lattice["vertex"], bounds, offsets, shift, packed)
    lattice["splat_plan"] = plan = (bounds, offsets, packed, shift)
    return plan


def _no_scale(dtype):
    """The empty scale array that means "no per-pixel factor" to :func:`_splat` and :func:`_slice`."""
    return np.empty(0, dtype)


def splat(values, lattice, scale=None, pixel_major=False, out=None, tasks=None):
    """``V = S (x diag(scale))`` for (C, N) values ((N, C) rows when ``pixel_major``; ``scale`` (N,) in the
    values' dtype, or None); returns the (M+1, C) buffer (row 0 zero), ``out`` when given. ``tasks``
    (default: the thread count) splits the vertices; the result does not depend on it."""
    c = values.shape[1] if pixel_major else values.shape[0]
    buf = np.empty((lattice["num_vertices"] + 1, c), values.dtype) if out is None else out
    tasks = tasks or num_threads()
    bounds, offsets, packed, shift = splat_plan(lattice, tasks)
    parallel_for(_splat, tasks, values, _no_scale(values.dtype) if scale is None else scale, lattice["vertex"],
                 lattice["weights"], bounds, offsets, packed, shift, buf, bool(pixel_major))
    return buf


def blur(buf, lattice, reverse=False, scratch=None):
    """``V <- B_j V`` for j = 0..d (d..0 when ``reverse``); returns the blurred buffer (may be ``scratch``
    or ``buf``, both are overwritten)."""
    neighbours = lattice["neighbours"]
    d1, m = neighbours.shape[:2]
    other = np.empty_like(buf) if scratch is None else scratch
    if np.may_share_memory(buf, other):
        raise ValueError("lattice blur: the scratch buffer must not overlap the values")
    half = buf.dtype.type(0.5)
    for j in (range(d1 - 1, -1, -1) if reverse else range(d1)):
        parallel_for(_blur_axis, m, buf, other, neighbours, j, half, grain=CPU_BLOCK)
        buf, other = other, buf
    return buf


def slice_(buf, lattice, scale=None, out=None):
    """``y = (alpha S^T V) diag(scale)`` (``scale`` (N,) in the buffer's dtype, or None); returns (C, N) in
    the buffer's dtype, written into ``out`` when given (C-contiguous)."""
    n, d1 = lattice["vertex"].shape
    if out is None:
        out = np.empty((buf.shape[1], n), buf.dtype)
    parallel_for(_slice, n, buf, lattice["vertex"], lattice["weights"], buf.dtype.type(slice_factor(d1 - 1)),
                 _no_scale(buf.dtype) if scale is None else scale, out, grain=CPU_BLOCK)
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
