r"""The permutohedral lattice's index built on the device: hash table, vertex numbering, blur neighbours and
the vertex -> (pixel, weight) gather index, from the per-point simplices of ``cuda._embed_kernel``.

The result is the host build's (:func:`.cpu.build_from_simplices`) array for array, bit for bit: the same
vertex numbering (first occurrence in (point, remainder) order), the same neighbours, and each vertex's
gather entries in increasing pixel order, so the splat sums in the host's order. Passes (E = N (d+1)
(point, remainder) entries, entry e = i (d+1) + r; one thread per entry, slot or vertex):

1. ``_insert_kernel``: each entry's key (d coordinates, recomputed from the simplex, never stored) is
   inserted in an open-addressing table of ``2^bits >= 2 E`` slots (load <= 1/2, linear probing from a
   32-bit hash of the coordinates) by atomic compare-and-swap of the entry number into an empty
   slot; a slot that already holds the key keeps the smallest entry (atomic min);
2. numbering: ``_first_kernel`` flags the entries that are the first of their key, an exclusive prefix sum
   (:func:`exclusive_scan`) of the flags numbers them in entry order -- the host's insertion order -- and
   ``_slot_id_kernel`` gives each slot its id, each id its first entry, and writes M to a one-element
   device array;
3. ``_vertex_kernel``: ``vertex[i, r]`` and the per-vertex entry counts (atomic add);
   ``_neighbours_kernel``: table lookups of the key stepped back along axis j; the step forward is its
   inverse, written without a second lookup, as on the host;
4. the gather index: offsets by a prefix sum of the counts, entries placed by an atomic cursor per vertex
   (``_place_kernel``), then each vertex heap-sorts its pixels and looks up their weights
   (``_order_kernel``): the order the host's counting sort gives.

Nothing crosses to the host: M is not needed there, since every per-vertex array is sized by the bound
E >= M and the kernels that walk vertices stop at the device's M (see :func:`build_on_device`).
"""
import numba
import numpy as np
from numba import cuda

from ..config import SCAN_CHUNK
from ..cuda_kernel import F32, I32, I64, gpu_kernel, grid_1d
from ..errors import ShapeError
from .hash_table import table_bits
from .simplex import key_coord

__all__ = ["build_on_device", "exclusive_scan", "workspace_array"]

_EMPTY = -1          # an empty table slot (entry numbers are >= 0)

# The table hash works in 32 bits so that no product leaves uint64 (numpy's scalars, which the simulator
# runs the kernels on, warn on every wrap-around): FNV-1 steps over the coordinates' low 32 bits, then
# Knuth's multiplicative hash, whose top ``bits`` of 32 pick the slot.
_FNV_PRIME = np.uint64(0x01000193)
_KNUTH = np.uint64(2654435761)
_LOW32 = np.uint64(0xFFFFFFFF)
_MAX_BITS = 32


@numba.njit(cache=True, inline="always")
def _hash_step(h, coord):
    """One FNV-1 step: ``(h * prime) xor (coord mod 2^32)``, kept below 2^32."""
    return ((h * _FNV_PRIME) & _LOW32) ^ np.uint64(np.int64(coord) & 0xFFFFFFFF)


@numba.njit(cache=True, inline="always")
def _slot_of(h, shift_t):
    """The first slot to probe for hash ``h``: the top ``32 - shift_t`` bits of ``h * Knuth mod 2^32``."""
    return np.int64(((h * _KNUTH) & _LOW32) >> np.uint64(shift_t))


def workspace_array(workspace, name, shape, dtype):
    """The device array ``name`` of ``workspace`` (a dict), made there on first use: a lattice rebuilt for a
    new image of the same size reuses every array of the previous build (all are sized by N and d only), so
    a forward allocates nothing after the first. ``workspace=None``: a new array every call."""
    if workspace is None:
        return cuda.device_array(shape, dtype)
    array = workspace.get(name)
    if array is None:
        array = workspace[name] = cuda.device_array(shape, dtype)
    return array


# ---- fills and the prefix sum ------------------------------------------------------------------------------

@gpu_kernel(lambda f: [(I64[::1], I64)])
def _fill_i64_kernel(out, value):
    """Thread i: ``out[i] = value``."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = value


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


def exclusive_scan(values, out, chunk=SCAN_CHUNK, workspace=None, name="scan"):
    """``out[k] = sum(values[:k])`` for k = 0..n on the device (int64 (n,) -> (n + 1,), ``out[n]`` the total).

    Chunks of ``chunk`` values summed by one thread each, the chunk sums scanned the same way (recursively,
    down to one serial thread), then each chunk's prefix sums from its base: integer sums, so the order of
    the additions does not matter. The chunk-sum arrays come from ``workspace`` under ``name`` (see
    :func:`workspace_array`).
    """
    n = values.shape[0]
    chunks = (n + chunk - 1) // chunk
    if chunks <= 1:
        _serial_scan_kernel[1, 1](values, out)
        return out
    sums = workspace_array(workspace, name + "_sums", chunks, np.int64)
    _chunk_sums_kernel[grid_1d(chunks)](values, chunk, sums)
    bases = exclusive_scan(sums, workspace_array(workspace, name + "_bases", chunks + 1, np.int64), chunk,
                           workspace, name + "_")
    _chunk_scan_kernel[grid_1d(chunks)](values, chunk, bases, out)
    return out


# ---- keys and the hash table -------------------------------------------------------------------------------
#
# A vertex key is the d coordinates of the remainder-r vertex of a point (``key_coord``), never stored: the
# table holds, per slot, an entry e = i (d+1) + r whose key is the slot's, and keys are compared by
# recomputing both entries' coordinates from ``rem0`` and ``rank`` (written before any insertion, so every
# read is of final values). Any d and any coordinate range work, and nothing about the keys has to come
# back to the host to lay them out.

@gpu_kernel(lambda f: [(I32[:, ::1], I32[:, ::1], I64, I64[::1], I64[::1])])
def _insert_kernel(rem0, rank, shift_t, table, entry_slot):
    """Thread e = i (d+1) + r: the key of point i's remainder-r vertex inserted by compare-and-swap of the
    entry number into an empty slot (linear probing from the key's hash, ``shift_t`` = 32 - bits); a slot
    found holding the same key gets ``min=`` e, so it ends with the key's first entry; ``entry_slot[e]`` =
    the slot."""
    e = cuda.grid(1)
    n, d1 = rem0.shape
    if e >= n * d1:
        return
    d = d1 - 1
    i = e // d1
    r = e - i * d1
    h = np.uint64(0)
    for q in range(d):
        h = _hash_step(h, key_coord(rem0[i, q], rank[i, q], r, d))
    mask = table.shape[0] - 1
    slot = _slot_of(h, shift_t)
    while True:
        old = cuda.atomic.cas(table, slot, _EMPTY, np.int64(e))
        if old == _EMPTY:
            break
        io = old // d1
        ro = old - io * d1
        same = True
        for q in range(d):
            if key_coord(rem0[io, q], rank[io, q], ro, d) != key_coord(rem0[i, q], rank[i, q], r, d):
                same = False
        if same:
            cuda.atomic.min(table, slot, np.int64(e))
            break
        slot = (slot + 1) & mask
    entry_slot[e] = slot


@gpu_kernel(lambda f: [(I64[::1], I64[::1], I64[::1])])
def _first_kernel(entry_slot, table, flags):
    """Thread e: ``flags[e]`` = 1 when entry e is the first holding its key, else 0."""
    e = cuda.grid(1)
    if e < flags.shape[0]:
        flags[e] = 1 if table[entry_slot[e]] == e else 0


@gpu_kernel(lambda f: [(I64[::1], I64[::1], I32[::1], I64[::1], I64[::1])])
def _slot_id_kernel(table, ids, slot_id, vertex_entry, count):
    """Thread s: ``slot_id[s]`` = the vertex id of slot s (its first entry's rank among first entries,
    ``ids`` the exclusive scan of the flags), -1 if empty, and ``vertex_entry[id]`` = that first entry;
    thread 0 also writes M into ``count[0]``."""
    s = cuda.grid(1)
    if s == 0:
        count[0] = ids[ids.shape[0] - 1]
    if s >= table.shape[0]:
        return
    if table[s] == _EMPTY:
        slot_id[s] = -1
        return
    v = ids[table[s]]
    slot_id[s] = v
    vertex_entry[v] = table[s]


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


@gpu_kernel(lambda f: [(I32[:, ::1], I32[:, ::1], I64[::1], I64[::1], I32[::1], I64[::1], I64,
                        I32[:, :, ::1])])
def _neighbours_kernel(rem0, rank, vertex_entry, table, slot_id, count, shift_t, neighbours):
    """Thread v < M (``count[0]``): ``neighbours[j, v, 0]`` = the vertex whose key is v's minus one in every
    coordinate plus d+1 in coordinate j (the step back along axis j; -1 if none), and, as its inverse,
    ``neighbours[j, u, 1] = v`` (no races: the step back along j is injective)."""
    v = cuda.grid(1)
    if v >= count[0]:
        return
    d1 = rem0.shape[1]
    d = d1 - 1
    f = vertex_entry[v]
    i = f // d1
    r = f - i * d1
    mask = table.shape[0] - 1
    for j in range(d1):
        h = np.uint64(0)
        for q in range(d):
            h = _hash_step(h, key_coord(rem0[i, q], rank[i, q], r, d) - 1 + (d1 if q == j else 0))
        slot = _slot_of(h, shift_t)
        u = -1
        while table[slot] != _EMPTY:
            other = table[slot]
            io = other // d1
            ro = other - io * d1
            same = True
            for q in range(d):
                c = key_coord(rem0[i, q], rank[i, q], r, d) - 1 + (d1 if q == j else 0)
                if key_coord(rem0[io, q], rank[io, q], ro, d) != c:
                    same = False
            if same:
                u = slot_id[slot]
                break
            slot = (slot + 1) & mask
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


def build_on_device(rem0, rank, weights, workspace=None):
    """The lattice index on the device from device simplices, as :func:`.cpu.build_from_simplices` builds it.

    Nothing crosses between host and device: the number of vertices M is not known on the host, so every
    per-vertex array is made for the bound E = N (d+1) (each entry names at most one new vertex), M stays on
    the device in ``count[0]``, and the per-vertex kernels (here and in the filter) stop at it. Rows from M
    on are inert: no gather entries, no neighbours.

    Parameters
    ----------
    rem0, rank : device array, (N, d+1), int32
    weights : device array, (N, d+1), float32
    workspace : dict, optional
        Where the arrays are kept for the next build of the same N and d (:func:`workspace_array`); the
        returned arrays are then the workspace's, overwritten by that next build.

    Returns
    -------
    dict
        Device arrays ``vertex`` (N, d+1) int32, ``neighbours`` (d+1, E, 2) int32, ``splat_offsets`` (E+1,)
        int64, ``splat_pixel``, ``splat_weight`` (E,) int32 / float32 (the host build's arrays are the first
        M rows, M + 1 offsets, all E entries), and ``count`` (1,) int64 holding M.
    """
    n, d1 = rem0.shape
    entries = n * d1
    # 1. the table: at least 2 E slots (load <= 1/2) whatever the number of distinct keys
    bits = table_bits(entries)
    if bits > _MAX_BITS:
        raise ShapeError("lattice backend 'cuda': %d points in %d dimensions need a table of 2^%d slots; the "
                         "device build hashes to at most 2^%d" % (n, d1 - 1, bits, _MAX_BITS))
    slots = 1 << bits
    table = workspace_array(workspace, "table", slots, np.int64)
    _fill_i64_kernel[grid_1d(slots)](table, _EMPTY)
    entry_slot = workspace_array(workspace, "entry_slot", entries, np.int64)
    _insert_kernel[grid_1d(entries)](rem0, rank, _MAX_BITS - bits, table, entry_slot)
    # 2. numbering in first-occurrence order
    flags = workspace_array(workspace, "flags", entries, np.int64)
    _first_kernel[grid_1d(entries)](entry_slot, table, flags)
    ids = exclusive_scan(flags, workspace_array(workspace, "ids", entries + 1, np.int64), SCAN_CHUNK, workspace,
                         "ids")
    slot_id = workspace_array(workspace, "slot_id", slots, np.int32)
    vertex_entry = workspace_array(workspace, "vertex_entry", entries, np.int64)
    count = workspace_array(workspace, "count", 1, np.int64)
    _slot_id_kernel[grid_1d(slots)](table, ids, slot_id, vertex_entry, count)
    # 3. vertex ids, counts and neighbours
    vertex = workspace_array(workspace, "vertex", (n, d1), np.int32)
    counts = workspace_array(workspace, "counts", entries, np.int64)
    _fill_i64_kernel[grid_1d(entries)](counts, 0)
    _vertex_kernel[grid_1d(entries)](entry_slot, slot_id, vertex, counts)
    neighbours = workspace_array(workspace, "neighbours", (d1, entries, 2), np.int32)
    _neighbours_init_kernel[grid_1d(entries)](neighbours)
    _neighbours_kernel[grid_1d(entries)](rem0, rank, vertex_entry, table, slot_id, count, _MAX_BITS - bits,
                                         neighbours)
    # 4. the gather index
    offsets = exclusive_scan(counts, workspace_array(workspace, "offsets", entries + 1, np.int64), SCAN_CHUNK,
                             workspace, "offsets")
    cursor = workspace_array(workspace, "cursor", entries, np.int64)
    _copy_i64_kernel[grid_1d(entries)](offsets, cursor)
    pixel = workspace_array(workspace, "pixel", entries, np.int32)
    _place_kernel[grid_1d(entries)](vertex, cursor, pixel)
    weight = workspace_array(workspace, "weight", entries, np.float32)
    _order_kernel[grid_1d(entries)](offsets, pixel, vertex, weights, weight)
    return dict(vertex=vertex, neighbours=neighbours, splat_offsets=offsets, splat_pixel=pixel,
                splat_weight=weight, count=count)


@gpu_kernel(lambda f: [(I64[::1], I64[::1])])
def _copy_i64_kernel(src, out):
    """Thread i: ``out[i] = src[i]`` for i < len(out)."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = src[i]
