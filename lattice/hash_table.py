"""Lattice vertex keys packed into int64 words, and the open-addressing hash table that numbers them.

A vertex of the d-dimensional lattice is named by its first d integer coordinates (the last one is implied
by the zero sum). The coordinates of one lattice span a small range, so a key packs into W int64 words
(W = 1 for the CRF's d = 2 and d = 5 lattices): coordinate q, minus the smallest value it can take, takes
``width_q`` bits at bit ``shift_q`` of word ``word_q`` (:func:`key_packing`). The ranges come from the
points' remainder-0 vertices with the margins every vertex key (rem0 − d1 .. rem0 + d) and every
neighbour query (key − 1 .. key + d) needs, so a query never carries into another field: packed keys are
hashed and compared as W integers, and a neighbour's key is the vertex's packed key plus a constant.

The table: ``2^bits`` slots, linear probing, Fibonacci hashing (multiply by 2^64/φ, keep the top bits),
keys stored inline next to their ids (id −1 = empty slot), kept at most half full. One-word keys (the
common case) have their own helpers with the key in a register; the multi-word helpers are compiled only
when a lattice needs them.
"""
import numba
import numpy as np

#: 2^64 / golden ratio, odd: the multiplier of Fibonacci hashing.
_GOLDEN = 0x9E3779B97F4A7C15


def key_packing(low, high, d):
    """Field layout of packed keys from the smallest and largest remainder-0 coordinate of each axis.

    Parameters
    ----------
    low, high : ndarray, (d+1,) or (d,), int
    d : int

    Returns
    -------
    origin, word, shift : ndarray, (d,), int64
        Coordinate q is stored as ``coord - origin[q]`` at bit ``shift[q]`` of word ``word[q]``.
    words : int
        W.
    """
    origin = np.asarray(low[:d], np.int64) - (d + 2)
    top = np.asarray(high[:d], np.int64) + 2 * d
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


def table_bits(count):
    """log2 of the smallest power-of-two table with at least 2 * count slots (load <= 1/2), >= 2^4."""
    bits = 4
    while (1 << bits) < 2 * count:
        bits += 1
    return bits


def empty_table(bits, words=1):
    """``(keys (2^bits * W,) int64, ids (2^bits,) int32 all −1)``."""
    return np.empty((1 << bits) * words, np.int64), np.full(1 << bits, -1, np.int32)


# ---- one-word keys ---------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True, inline="always")
def find1(table_keys, table_ids, key, shift):
    """Slot of ``key``, or of the empty slot that ends its probe sequence (``shift`` = 64 − bits)."""
    mask = table_ids.shape[0] - 1
    slot = np.int64((np.uint64(key) * np.uint64(_GOLDEN)) >> np.uint64(shift))
    while table_ids[slot] >= 0 and table_keys[slot] != key:
        slot = (slot + 1) & mask
    return slot


@numba.njit(cache=True, nogil=True, inline="always")
def insert1(table_keys, table_ids, key, shift, new_id):
    """Id of ``key``; inserted with ``new_id`` when absent."""
    slot = find1(table_keys, table_ids, key, shift)
    if table_ids[slot] < 0:
        table_keys[slot] = key
        table_ids[slot] = new_id
    return table_ids[slot]


@numba.njit(cache=True, nogil=True)
def fill1(table_keys, table_ids, keys, count, shift):
    """Insert ``keys[v]`` with id v for v < count (a grown table's refill)."""
    for v in range(count):
        insert1(table_keys, table_ids, keys[v], shift, v)


# ---- multi-word keys -------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True, inline="always")
def find(table_keys, table_ids, key, base, w, shift):
    """:func:`find1` for the W-word key ``key[base:base+w]``."""
    mask = table_ids.shape[0] - 1
    h = np.uint64(0)
    for q in range(w):
        h = (h ^ np.uint64(key[base + q])) * np.uint64(_GOLDEN)
    slot = np.int64(h >> np.uint64(shift))
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


@numba.njit(cache=True, nogil=True, inline="always")
def insert(table_keys, table_ids, key, base, w, shift, new_id):
    """:func:`insert1` for the W-word key ``key[base:base+w]``."""
    slot = find(table_keys, table_ids, key, base, w, shift)
    if table_ids[slot] < 0:
        for q in range(w):
            table_keys[slot * w + q] = key[base + q]
        table_ids[slot] = new_id
    return table_ids[slot]


@numba.njit(cache=True, nogil=True)
def fill(table_keys, table_ids, keys, count, w, shift):
    """:func:`fill1` for W-word keys (``keys[v*w : (v+1)*w]``)."""
    for v in range(count):
        insert(table_keys, table_ids, keys, v * w, w, shift, v)
