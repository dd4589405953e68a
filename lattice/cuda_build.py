r"""The permutohedral lattice's index built on the device: hash table, vertex numbering, blur neighbours and
the vertex -> (pixel, weight) gather index, from the per-point simplices of ``cuda._embed_kernel``.

The result is the host build's (:func:`.cpu.build_from_simplices`) array for array, bit for bit: the same
vertex numbering (first occurrence in (point, remainder) order), the same neighbours, and each vertex's
gather entries in increasing pixel order, so the splat sums in the host's order. Passes (E = N (d+1)
(point, remainder) entries, entry e = i (d+1) + r; one thread per entry, slot or vertex):

1. ``_range_kernel``: the smallest and largest remainder-0 coordinate of each axis (atomic min / max);
   ``_packing_kernel`` (one thread) lays out the packed keys from them exactly as
   :func:`.hash_table.key_packing` does, with the neighbour steps, and records the number of key words W;
2. ``_insert_kernel``: each entry's packed one-word key is inserted in an open-addressing table of
   ``2^bits >= 2 E`` slots (load <= 1/2; the host's Fibonacci hash and linear probing) by atomic
   compare-and-swap on the key; each slot keeps the smallest entry that holds its key (atomic min);
3. numbering: ``_first_kernel`` flags the entries that are the first of their key, an exclusive prefix sum
   (:func:`exclusive_scan`) of the flags numbers them in entry order -- the host's insertion order -- and
   ``_slot_id_kernel`` gives each slot its id and each id its key; M (and W) cross to the host, the one
   device -> host copy of a build, for the shapes of what follows;
4. ``_vertex_kernel``: ``vertex[i, r]`` and the per-vertex entry counts (atomic add);
   ``_neighbours_kernel``: table lookups of key + step_j (the step back along axis j); the step forward is
   its inverse, written without a second lookup, as on the host;
5. the gather index: offsets by a prefix sum of the counts, entries placed by an atomic cursor per vertex
   (``_place_kernel``), then each vertex heap-sorts its pixels and looks up their weights
   (``_order_kernel``): the order the host's counting sort gives.

Only one-word keys (W = 1: every lattice of the CRF, d = 2 and d = 5) are built here;
:func:`build_on_device` returns ``None`` for a wider key and the caller uses the host build.
"""
import numpy as np
from numba import cuda

from ..config import SCAN_CHUNK
from ..cuda_kernel import F32, I32, I64, gpu_kernel, grid_1d
from .hash_table import _GOLDEN, table_bits
from .simplex import key_coord

__all__ = ["build_on_device", "exclusive_scan"]

_EMPTY = -1          # an empty table slot's key (packed keys are >= 0: every field is coord - origin >= 0)
_INT32_MAX = np.iinfo(np.int32).max
_INT32_MIN = np.iinfo(np.int32).min


# ---- fills and the prefix sum ------------------------------------------------------------------------------

@gpu_kernel(lambda f: [(I64[::1], I64)])
def _fill_i64_kernel(out, value):
    """Thread i: ``out[i] = value``."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = value


@gpu_kernel(lambda f: [(I32[::1], I32[::1])])
def _range_init_kernel(low, high):
    """Thread r: ``low[r]``, ``high[r]`` set to the int32 extremes before the atomic min / max."""
    r = cuda.grid(1)
    if r < low.shape[0]:
        low[r] = _INT32_MAX
        high[r] = _INT32_MIN


@gpu_kernel(lambda f: [(I64[::1], I64, I64[::1])])
def _chunk_sums_kernel(values, chunk, sums):
    """Thread c: ``sums[c]`` = the sum of ``values[c chunk : (c+1) chunk]``."""
    c = cuda.grid(1)
    if c >= sums.shape[0]:
        return
    acc = 0
    for k in range(c * chunk, min(values.shape[0], (c + 1) * chunk)):
        acc += values[k]
    sums[c] = acc


@gpu_kernel(lambda f: [(I64[::1], I64, I64[::1], I64[::1])])
def _chunk_scan_kernel(values, chunk, bases, out):
    """Thread c: the exclusive prefix sums of chunk c from ``bases[c]``; the last chunk also writes the total
    ``out[n]``. ``bases`` (chunks + 1,) exclusive sums of the chunk sums; ``out`` (n + 1,)."""
    c = cuda.grid(1)
    if c >= bases.shape[0] - 1:
        return
    n = values.shape[0]
    acc = bases[c]
    for k in range(c * chunk, min(n, (c + 1) * chunk)):
        out[k] = acc
        acc += values[k]
    if c == bases.shape[0] - 2:
        out[n] = acc


@gpu_kernel(lambda f: [(I64[::1], I64[::1])])
def _serial_scan_kernel(values, out):
    """One thread: ``out[k] = sum(values[:k])`` for k = 0..n (the last level of :func:`exclusive_scan`)."""
    if cuda.grid(1) != 0:
        return
    acc = 0
    for k in range(values.shape[0]):
        out[k] = acc
        acc += values[k]
    out[values.shape[0]] = acc


def exclusive_scan(values, out, chunk=SCAN_CHUNK):
    """``out[k] = sum(values[:k])`` for k = 0..n on the device (int64 (n,) -> (n + 1,), ``out[n]`` the total).

    Chunks of ``chunk`` values summed by one thread each, the chunk sums scanned the same way (recursively,
    down to one serial thread), then each chunk's prefix sums from its base: integer sums, so the order of
    the additions does not matter.
    """
    n = values.shape[0]
    chunks = (n + chunk - 1) // chunk
    if chunks <= 1:
        _serial_scan_kernel[1, 1](values, out)
        return out
    sums = cuda.device_array(chunks, np.int64)
    _chunk_sums_kernel[grid_1d(chunks)](values, chunk, sums)
    bases = exclusive_scan(sums, cuda.device_array(chunks + 1, np.int64), chunk)
    _chunk_scan_kernel[grid_1d(chunks)](values, chunk, bases, out)
    return out


# ---- keys and the hash table -------------------------------------------------------------------------------

@gpu_kernel(lambda f: [(I32[:, ::1], I32[::1], I32[::1])])
def _range_kernel(rem0, low, high):
    """Thread i: point i's remainder-0 coordinates into the per-axis minimum ``low`` and maximum ``high``."""
    i = cuda.grid(1)
    if i >= rem0.shape[0]:
        return
    for r in range(rem0.shape[1]):
        cuda.atomic.min(low, r, rem0[i, r])
        cuda.atomic.max(high, r, rem0[i, r])


@gpu_kernel(lambda f: [(I32[::1], I32[::1], I64[::1], I64[::1], I64[::1], I64[::1])])
def _packing_kernel(low, high, origin, shift, step, info):
    """One thread: :func:`.hash_table.key_packing` for one word -- ``origin[q]``, ``shift[q]`` (d,), the
    neighbour steps ``step[j]`` (d+1,) (minus one in every field, plus d+1 in field j) -- and ``info[0]`` = W,
    the words a key needs (the fields are not laid out when W > 1)."""
    if cuda.grid(1) != 0:
        return
    d = origin.shape[0]
    used = 0
    words = 1
    for q in range(d):
        origin[q] = np.int64(low[q]) - (d + 2)
        span = np.int64(high[q]) + 2 * d - origin[q]
        width = 0
        while span > 0:                              # int.bit_length
            span >>= 1
            width += 1
        if used + width > 63:
            words = 2
        shift[q] = used
        used += width
    info[0] = words
    for j in range(d + 1):
        step[j] = 0
    if words != 1:
        return
    for q in range(d):
        one = np.int64(1) << shift[q]
        for j in range(d + 1):
            step[j] -= one
        step[q] += np.int64(d + 1) * one


@gpu_kernel(lambda f: [(I32[:, ::1], I32[:, ::1], I64[::1], I64[::1], I64[::1], I64, I64[::1], I64[::1],
                        I64[::1])])
def _insert_kernel(rem0, rank, origin, shift, info, shift_t, table_keys, table_first, entry_slot):
    """Thread e = i (d+1) + r: the key of point i's remainder-r vertex inserted by compare-and-swap (linear
    probing from its Fibonacci hash, ``shift_t`` = 64 - bits); ``table_first[slot]`` min= e,
    ``entry_slot[e]`` = its slot. Nothing is done unless the keys fit one word (``info[0] == 1``)."""
    e = cuda.grid(1)
    n, d1 = rem0.shape
    if e >= n * d1 or info[0] != 1:
        return
    d = d1 - 1
    i = e // d1
    r = e - i * d1
    key = np.int64(0)
    for q in range(d):
        key += (np.int64(key_coord(rem0[i, q], rank[i, q], r, d)) - origin[q]) << shift[q]
    mask = table_keys.shape[0] - 1
    slot = np.int64((np.uint64(key) * np.uint64(_GOLDEN)) >> np.uint64(shift_t))
    while True:
        old = cuda.atomic.cas(table_keys, slot, _EMPTY, key)
        if old == _EMPTY or old == key:
            break
        slot = (slot + 1) & mask
    cuda.atomic.min(table_first, slot, np.int64(e))
    entry_slot[e] = slot


@gpu_kernel(lambda f: [(I64[::1], I64[::1], I64[::1])])
def _first_kernel(entry_slot, table_first, flags):
    """Thread e: ``flags[e]`` = 1 when entry e is the first holding its key, else 0."""
    e = cuda.grid(1)
    if e < flags.shape[0]:
        flags[e] = 1 if table_first[entry_slot[e]] == e else 0


@gpu_kernel(lambda f: [(I64[::1], I64[::1], I64[::1], I32[::1], I64[::1], I64[::1])])
def _slot_id_kernel(table_keys, table_first, ids, slot_id, vertex_key, info):
    """Thread s: ``slot_id[s]`` = the vertex id of slot s (its first entry's rank among first entries,
    ``ids`` the exclusive scan of the flags), -1 if empty, and ``vertex_key[id]`` = its key; thread 0 also
    writes M into ``info[1]``."""
    s = cuda.grid(1)
    if s == 0:
        info[1] = ids[ids.shape[0] - 1]
    if s >= table_keys.shape[0]:
        return
    if table_keys[s] == _EMPTY:
        slot_id[s] = -1
        return
    v = ids[table_first[s]]
    slot_id[s] = v
    vertex_key[v] = table_keys[s]


# ---- the index ---------------------------------------------------------------------------------------------

@gpu_kernel(lambda f: [(I64[::1], I32[::1], I32[:, ::1], I64[::1])])
def _vertex_kernel(entry_slot, slot_id, vertex, counts):
    """Thread e = i (d+1) + r: ``vertex[i, r]`` and one more entry in ``counts[vertex]`` (atomic add)."""
    e = cuda.grid(1)
    n, d1 = vertex.shape
    if e >= n * d1:
        return
    i = e // d1
    v = slot_id[entry_slot[e]]
    vertex[i, e - i * d1] = v
    cuda.atomic.add(counts, v, 1)


@gpu_kernel(lambda f: [(I32[:, :, ::1],)])
def _neighbours_init_kernel(neighbours):
    """Thread v: every neighbour of vertex v set to -1 (absent)."""
    v = cuda.grid(1)
    if v >= neighbours.shape[1]:
        return
    for j in range(neighbours.shape[0]):
        neighbours[j, v, 0] = -1
        neighbours[j, v, 1] = -1


@gpu_kernel(lambda f: [(I64[::1], I64[::1], I32[::1], I64[::1], I64, I32[:, :, ::1])])
def _neighbours_kernel(vertex_key, table_keys, slot_id, step, shift_t, neighbours):
    """Thread v: ``neighbours[j, v, 0]`` = the vertex with key ``key_v + step[j]`` (-1 if none) and, as its
    inverse, ``neighbours[j, u, 1] = v`` (no races: the step back along j is injective)."""
    v = cuda.grid(1)
    m = neighbours.shape[1]
    if v >= m:
        return
    mask = table_keys.shape[0] - 1
    for j in range(neighbours.shape[0]):
        key = vertex_key[v] + step[j]
        slot = np.int64((np.uint64(key) * np.uint64(_GOLDEN)) >> np.uint64(shift_t))
        while table_keys[slot] != _EMPTY and table_keys[slot] != key:
            slot = (slot + 1) & mask
        u = -1 if table_keys[slot] == _EMPTY else slot_id[slot]
        neighbours[j, v, 0] = u
        if u >= 0:
            neighbours[j, u, 1] = v


@gpu_kernel(lambda f: [(I32[:, ::1], I64[::1], I32[::1])])
def _place_kernel(vertex, cursor, pixel):
    """Thread e = i (d+1) + r: pixel i into the next free place of its vertex's gather list (``cursor``
    starts at the offsets; the order within a vertex is fixed afterwards by :data:`_order_kernel`)."""
    e = cuda.grid(1)
    n, d1 = vertex.shape
    if e >= n * d1:
        return
    i = e // d1
    place = cuda.atomic.add(cursor, vertex[i, e - i * d1], 1)
    pixel[place] = i


@gpu_kernel(lambda f: [(I64[::1], I32[::1], I32[:, ::1], F32[:, ::1], F32[::1])])
def _order_kernel(offsets, pixel, vertex, weights, weight):
    """Thread v: vertex v's pixels heap-sorted into increasing order (a pixel appears at most once per
    vertex), and each one's barycentric weight for v into ``weight``."""
    v = cuda.grid(1)
    if v >= offsets.shape[0] - 1:
        return
    lo = offsets[v]
    size = offsets[v + 1] - lo
    # heap sort with one sift-down loop (inline: the simulator cannot pass device arrays to numba.njit
    # helpers): first the heap is built (start counting down), then its top is moved behind it (end down)
    start = size // 2
    end = size
    while end > 1:
        if start > 0:
            start -= 1
        else:
            end -= 1
            t = pixel[lo]
            pixel[lo] = pixel[lo + end]
            pixel[lo + end] = t
        root = start
        while True:
            child = 2 * root + 1
            if child >= end:
                break
            if child + 1 < end and pixel[lo + child + 1] > pixel[lo + child]:
                child += 1
            if pixel[lo + root] >= pixel[lo + child]:
                break
            t = pixel[lo + root]
            pixel[lo + root] = pixel[lo + child]
            pixel[lo + child] = t
            root = child
    for e in range(lo, lo + size):
        i = pixel[e]
        for r in range(vertex.shape[1]):
            if vertex[i, r] == v:
                weight[e] = weights[i, r]


def build_on_device(rem0, rank, weights):
    """The lattice index on the device from device simplices, as :func:`.cpu.build_from_simplices` builds it.

    Parameters
    ----------
    rem0, rank : device array, (N, d+1), int32
    weights : device array, (N, d+1), float32

    Returns
    -------
    dict or None
        Device arrays ``vertex`` (N, d+1) int32, ``neighbours`` (d+1, M, 2) int32, ``splat_offsets`` (M+1,)
        int64, ``splat_pixel``, ``splat_weight`` (N (d+1),) int32 / float32, and ``num_vertices`` M; None when
        the keys need more than one int64 word (the caller builds on the host then). One small device ->
        host copy (W and M); nothing crosses the other way.
    """
    n, d1 = rem0.shape
    d = d1 - 1
    entries = n * d1
    low = cuda.device_array(d1, np.int32)
    high = cuda.device_array(d1, np.int32)
    _range_init_kernel[grid_1d(d1)](low, high)
    _range_kernel[grid_1d(n)](rem0, low, high)
    origin = cuda.device_array(d, np.int64)
    shift = cuda.device_array(d, np.int64)
    step = cuda.device_array(d1, np.int64)
    info = cuda.device_array(2, np.int64)
    _packing_kernel[1, 1](low, high, origin, shift, step, info)
    # 2. the table: at least 2 E slots (load <= 1/2) whatever the number of distinct keys
    bits = table_bits(entries)
    slots = 1 << bits
    table_keys = cuda.device_array(slots, np.int64)
    table_first = cuda.device_array(slots, np.int64)
    _fill_i64_kernel[grid_1d(slots)](table_keys, _EMPTY)
    _fill_i64_kernel[grid_1d(slots)](table_first, entries)
    entry_slot = cuda.device_array(entries, np.int64)
    _insert_kernel[grid_1d(entries)](rem0, rank, origin, shift, info, 64 - bits, table_keys, table_first,
                                     entry_slot)
    # 3. numbering in first-occurrence order
    flags = cuda.device_array(entries, np.int64)
    _first_kernel[grid_1d(entries)](entry_slot, table_first, flags)
    ids = exclusive_scan(flags, cuda.device_array(entries + 1, np.int64))
    slot_id = cuda.device_array(slots, np.int32)
    vertex_key = cuda.device_array(entries, np.int64)
    _slot_id_kernel[grid_1d(slots)](table_keys, table_first, ids, slot_id, vertex_key, info)
    words, m = (int(x) for x in info.copy_to_host())
    if words != 1:
        return None
    # 4. vertex ids, counts and neighbours
    vertex = cuda.device_array((n, d1), np.int32)
    counts = cuda.device_array(m, np.int64)
    _fill_i64_kernel[grid_1d(m)](counts, 0)
    _vertex_kernel[grid_1d(entries)](entry_slot, slot_id, vertex, counts)
    neighbours = cuda.device_array((d1, m, 2), np.int32)
    _neighbours_init_kernel[grid_1d(m)](neighbours)
    _neighbours_kernel[grid_1d(m)](vertex_key, table_keys, slot_id, step, 64 - bits, neighbours)
    # 5. the gather index
    offsets = exclusive_scan(counts, cuda.device_array(m + 1, np.int64))
    cursor = cuda.device_array(m, np.int64)
    _copy_i64_kernel[grid_1d(m)](offsets, cursor)
    pixel = cuda.device_array(entries, np.int32)
    _place_kernel[grid_1d(entries)](vertex, cursor, pixel)
    weight = cuda.device_array(entries, np.float32)
    _order_kernel[grid_1d(m)](offsets, pixel, vertex, weights, weight)
    return dict(vertex=vertex, neighbours=neighbours, splat_offsets=offsets, splat_pixel=pixel,
                splat_weight=weight, num_vertices=m)


@gpu_kernel(lambda f: [(I64[::1], I64[::1])])
def _copy_i64_kernel(src, out):
    """Thread i: ``out[i] = src[i]`` for i < len(out)."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = src[i]
