r"""The permutohedral lattice in plain NumPy: the readable oracle for ``cpu.py`` and ``cuda.py``.

Adams, Baek and Davis, "Fast High-Dimensional Filtering Using the Permutohedral Lattice", Eurographics
2010 (cited below as [Adams] with the section), as modified for CRF-as-RNN (``modified_permutohedral.cpp``,
spec ``crfasrnn.md`` §3). Points are pixels i = 0..N-1 with features f_i in R^d; values are C planes of
N numbers (channel-planar, ``values[k, i]``).

One function per stage, in the order a filter call uses them:

1. :func:`embed` -- scale the features and elevate them onto the plane ``sum(x) = 0`` of R^{d+1}
   ([Adams] §3.1, "y = E p").
2. :func:`enclosing_simplex` -- nearest remainder-0 lattice point, ranks of the residual, barycentric
   weights and the d+1 vertex keys ([Adams] §3.1, Alg. "splat").
3. :func:`build` -- give every distinct vertex key an index (insertion order: pixel, then remainder) and
   find each vertex's two neighbours along each of the d+1 lattice axes ([Adams] §3.2).
4. :func:`splat` -- ``V = S x``: each pixel adds its value, times its barycentric weight, to its d+1
   vertices.
5. :func:`blur` -- ``V <- B_j V`` for j = 0..d: along axis j, ``new[v] = old[v] + 0.5 (old[n1] + old[n2])``
   (weights [0.5, 1, 0.5], not normalised; missing neighbours count as 0).
6. :func:`slice_` -- ``y = alpha S^T V``: each pixel reads its d+1 vertices with the same weights.

The stage API is the CPU backend's (:mod:`.cpu`): ``build(features)`` returns the lattice record, a dict
with ``vertex`` (N, d+1), ``weights`` (N, d+1), ``neighbours`` (d+1, M, 2) and ``num_vertices`` M, and
``splat(values, lattice)``, ``blur(buf, lattice, reverse)``, ``slice_(buf, lattice)`` and
``filter_(values, lattice, reverse)`` take it (the CPU versions add keyword options: a per-pixel ``scale``,
an ``out`` array, pixel-major values). ``tests/lattice/test_cpu.py`` holds the two side by side,
stage by stage.

Arithmetic
----------
Lattice arithmetic (scaling, elevation, rounding, barycentric weights) is float32, exactly as the C++
code, whatever the dtype of the values: the constants are float32, 1/(d+1) is a float32 multiplication
and rounding is half to even (SSE ``cvtps2dq``). Values keep their own dtype through splat, blur and
slice: float32 values give the C++ float32 results; float64 values use the (float32) weights converted to
float64, so the filter is then an exact float64 linear map whose transpose identity holds to ~1e-16.

The transpose
-------------
Write the filter as the matrix product

.. math:: K = \alpha\, S^T B_d \cdots B_1 B_0\, S,

with S the M x N splat matrix (``S[v, i]`` = weight of pixel i at vertex v) and B_j the blur along
axis j. Slicing reads each pixel's vertices with the same weights that splatting wrote with, so the
slice matrix is exactly S^T. Each B_j is symmetric: ``B_j = I + 0.5 (P_j + P_j^T)`` where P_j moves a
value one step along +axis j (the neighbour n2 of v has v as its n1 and vice versa, and a missing
neighbour contributes zero in both directions). Then

.. math:: K^T = \alpha\, S^T B_0^T B_1^T \cdots B_d^T S = \alpha\, S^T B_0 B_1 \cdots B_d\, S,

i.e. the same filter with the blur axes visited in the order d, d-1, ..., 0 -- ``reverse=True``. The
B_j do not commute (the lattice is finite and sparse), so K itself is not symmetric and the backward
pass of a layer that filters must use ``reverse=True``.

The slice factor
----------------
``alpha = 1 / (1 + 2^-d)`` is the constant the C++ code (and Krähenbühl's densecrf before it) applies
at the slice; the code comments call it a "magic scaling constant" without a derivation. It is a global
gain: the splat-blur-slice operator with blur weights [0.5, 1, 0.5] per axis has a gain that grows with
d, and alpha brings the raw output towards the unnormalised Gaussian sum ``sum_j exp(-|f_i - f_j|^2/2)``
(``tests/lattice/test_reference.py`` bounds the remaining ratio on a dense grid of points). It
cancels whenever the output is normalised by ``K 1`` (CRF-as-RNN and pydensecrf's NORMALIZE_AFTER), so
it matters only for raw-lattice comparisons.

Relation to pydensecrf
----------------------
Krähenbühl's ``Permutohedral`` (pydensecrf) does the same maths. Its SSE initialiser handles pixels in
blocks of four and, when N is not a multiple of 4, fills the missing lanes with the all-zero feature
vector and inserts *their* vertices into the lattice; these extra vertices receive no splat but take
part in the blur and can carry value between real vertices. This module does not reproduce that
padding: results agree with pydensecrf to float32 rounding when N % 4 == 0 (500 x 500 is), and may
differ by a few per cent otherwise. Values are channel-planar here, label-fastest per pixel there.
"""
import numpy as np

__all__ = ["scale_factors", "embed", "enclosing_simplex", "build", "splat", "blur", "slice_", "filter_",
           "ReferenceLattice"]


def scale_factors(d):
    """Per-feature scale that makes the lattice kernel approximate ``exp(-|f_i - f_j|^2 / 2)``.

    Parameters
    ----------
    d : int
        Feature dimension.

    Returns
    -------
    ndarray, (d,), float32
        ``scale_i = (d + 1) sqrt(2/3) / sqrt((i + 1)(i + 2))``, computed in float64 and stored as float32
        ([Adams] p.6: the expected standard deviation of the lattice filter is ``(d + 1) sqrt(2/3)``).
    """
    inv_std_dev = np.float32(np.sqrt(2.0 / 3.0) * (d + 1))
    i = np.arange(d, dtype=np.float64)
    return (1.0 / np.sqrt((i + 1.0) * (i + 2.0)) * np.float64(inv_std_dev)).astype(np.float32)


def slice_factor(d):
    """``alpha = 1 / (1 + 2^-d)`` as float32 (see the module notes)."""
    return np.float32(1.0 / (1.0 + 2.0 ** (-d)))


def embed(features):
    """Scale the features and elevate them onto the hyperplane ``sum(x) = 0`` of R^{d+1}.

    Parameters
    ----------
    features : ndarray, (N, d), float32

    Returns
    -------
    ndarray, (N, d+1), float32
        With ``c_j = f_j scale_j``: ``e_d = -d c_{d-1}``, ``e_j = sum_{k >= j} c_k - j c_{j-1}``,
        ``e_0 = sum_k c_k``; accumulated from j = d down to 1 in float32 as the C++ code does.
    """
    features = np.asarray(features, dtype=np.float32)
    n, d = features.shape
    scale = scale_factors(d)
    elevated = np.empty((n, d + 1), dtype=np.float32)
    running = np.zeros(n, dtype=np.float32)
    for j in range(d, 0, -1):
        c = features[:, j - 1] * scale[j - 1]
        elevated[:, j] = running - np.float32(j) * c
        running = running + c
    elevated[:, 0] = running
    return elevated


def round_half_even(x):
    """Round to the nearest integer, ties to even (SSE ``cvtps2dq`` with the default MXCSR)."""
    return np.rint(x)


def enclosing_simplex(elevated):
    """Find the simplex enclosing each elevated point, its barycentric weights and its vertex keys.

    Parameters
    ----------
    elevated : ndarray, (N, d+1), float32

    Returns
    -------
    keys : ndarray, (N, d+1, d), int64
        ``keys[i, r]`` = the first d coordinates of the remainder-r vertex of pixel i (the last one is
        implied by the zero sum).
    weights : ndarray, (N, d+1), float32
        Barycentric weight of pixel i at its remainder-r vertex; non-negative, summing to 1.

    Notes
    -----
    1. ``v = round(e / (d+1))`` (half to even), ``rem0 = v (d+1)``, ``s = sum v``.
    2. Rank of ``delta = e - rem0`` in descending order, ties broken by index.
    3. ``rank += s``; ranks outside [0, d] wrap by d+1 and move ``rem0`` by -+(d+1).
    4. ``b[d - rank_i] += delta'_i / (d+1)``, ``b[d - rank_i + 1] -= delta'_i / (d+1)``,
       ``b[0] += 1 + b[d+1]``.
    5. ``key_i(r) = rem0_i + r`` if ``rank_i <= d - r`` else ``rem0_i + r - (d+1)``.
    """
    n, d1 = elevated.shape
    d = d1 - 1
    inv_d1 = np.float32(1.0 / d1)
    dplus1 = np.float32(d1)
    # 1. nearest remainder-0 point
    v = round_half_even(elevated * inv_d1)
    rem0 = v * dplus1
    s = v.sum(axis=1).astype(np.int64)
    # 2. ranks of the residual, ties by index
    delta = elevated - rem0
    rank = np.zeros((n, d1), dtype=np.int64)
    for i in range(d):
        for j in range(i + 1, d1):
            less = delta[:, i] < delta[:, j]
            rank[:, i] += less
            rank[:, j] += ~less
    # 3. back onto the plane
    rank += s[:, None]
    low = rank < 0
    high = rank >= d1
    rank[low] += d1
    rem0[low] += dplus1
    rank[high] -= d1
    rem0[high] -= dplus1
    # 4. barycentric weights, accumulated in float32 in the C++ order
    bary = np.zeros((n, d1 + 1), dtype=np.float32)
    rows = np.arange(n)
    for i in range(d1):
        w = (elevated[:, i] - rem0[:, i]) * inv_d1
        bary[rows, d - rank[:, i]] += w
        bary[rows, d - rank[:, i] + 1] -= w
    bary[:, 0] += np.float32(1.0) + bary[:, d1]
    # 5. vertex keys
    r = np.arange(d1)[None, :, None]
    rank_k = rank[:, None, :d]
    keys = rem0[:, None, :d].astype(np.int64) + r - np.where(rank_k > d - r, d1, 0)
    return keys, bary[:, :d1]


def build(features):
    """Build the lattice: vertex index and weight per (pixel, remainder), and blur neighbours.

    Parameters
    ----------
    features : ndarray, (N, d), float32

    Returns
    -------
    dict, the lattice record
        ``vertex`` (N, d+1) int64: index of the remainder-r vertex of pixel i, in insertion order (pixel, then
        remainder); ``weights`` (N, d+1) float32; ``neighbours`` (d+1, M, 2) int64: ``neighbours[j, v] = (n1,
        n2)``, the vertices one step back / forward along axis j, or -1; ``num_vertices`` M.
    """
    keys, weights = enclosing_simplex(embed(features))
    n, d1, d = keys.shape
    table = {}
    vertex = np.empty((n, d1), dtype=np.int64)
    for i in range(n):
        for r in range(d1):
            vertex[i, r] = table.setdefault(tuple(keys[i, r]), len(table))
    m = len(table)
    neighbours = np.full((d1, m, 2), -1, dtype=np.int64)
    for key, v in table.items():
        k = np.array(key, dtype=np.int64)
        for j in range(d1):
            # one step along axis j is +-((d+1) e_j - 1); e_d is not stored
            n1 = k - 1
            n2 = k + 1
            if j < d:
                n1[j] = k[j] + d
                n2[j] = k[j] - d
            neighbours[j, v, 0] = table.get(tuple(n1), -1)
            neighbours[j, v, 1] = table.get(tuple(n2), -1)
    return dict(vertex=vertex, weights=weights, neighbours=neighbours, num_vertices=m)


def splat(values, lattice):
    """``V = S x``: accumulate weighted pixel values onto the vertices.

    Parameters
    ----------
    values : ndarray, (C, N)
    lattice : dict, from :func:`build`

    Returns
    -------
    ndarray, (M + 1, C), values' dtype
        Row v + 1 holds vertex v; row 0 is the zero row that missing neighbours point at.
    """
    vertex, weights = lattice["vertex"], lattice["weights"]
    c, n = values.shape
    buf = np.zeros((lattice["num_vertices"] + 1, c), dtype=values.dtype)
    w = weights.astype(values.dtype)
    contrib = w[:, :, None] * values.T[:, None, :]          # (N, d+1, C), pixel-major order
    np.add.at(buf, vertex.reshape(-1) + 1, contrib.reshape(-1, c))
    return buf


def blur(buf, lattice, reverse=False):
    """``V <- B_j V`` along every axis, j = 0..d (or d..0 when ``reverse``).

    Parameters
    ----------
    buf : ndarray, (M + 1, C)
        Splatted values with the zero row first; not modified.
    lattice : dict, from :func:`build`
    reverse : bool

    Returns
    -------
    ndarray, (M + 1, C)
    """
    neighbours = lattice["neighbours"]
    d1 = neighbours.shape[0]
    half = buf.dtype.type(0.5)
    old = buf.copy()
    for j in (range(d1 - 1, -1, -1) if reverse else range(d1)):
        new = old.copy()
        n1 = neighbours[j, :, 0] + 1
        n2 = neighbours[j, :, 1] + 1
        new[1:] = old[1:] + half * (old[n1] + old[n2])
        old = new
    return old


def slice_(buf, lattice):
    """``y = alpha S^T V``: each pixel reads its d+1 vertices with its barycentric weights.

    Parameters
    ----------
    buf : ndarray, (M + 1, C)
    lattice : dict, from :func:`build`

    Returns
    -------
    ndarray, (C, N)
        Accumulated over r = 0..d in order, with the weight pre-multiplied by alpha (as the C++ SSE
        path does) in the values' dtype, so that float64 slicing is the float64 transpose of splatting
        up to one rounding of ``w * alpha``.
    """
    vertex, weights = lattice["vertex"], lattice["weights"]
    n, d1 = vertex.shape
    wa = weights.astype(buf.dtype) * buf.dtype.type(slice_factor(d1 - 1))
    out = np.zeros((n, buf.shape[1]), dtype=buf.dtype)
    for r in range(d1):
        out += wa[:, r, None] * buf[vertex[:, r] + 1]
    return np.ascontiguousarray(out.T)


def filter_(values, lattice, reverse=False):
    """Splat, blur and slice: ``K x`` (or ``K^T x`` when ``reverse``).

    Parameters
    ----------
    values : ndarray, (C, N), float32 or float64
    lattice : dict, from :func:`build`
    reverse : bool

    Returns
    -------
    ndarray, (C, N), values' dtype
    """
    return slice_(blur(splat(values, lattice), lattice, reverse), lattice)


class ReferenceLattice:
    """A lattice built by :func:`build` and applied by :func:`filter_` (the facade's ``"reference"``
    backend).

    Parameters
    ----------
    features : ndarray, (N, d), float32 (already checked by the facade)
    """

    def __init__(self, features):
        self.arrays = build(features)
        self.num_vertices = self.arrays["num_vertices"]

    def filter(self, values, reverse=False):
        """Filter (C, N) values; see :func:`filter_`."""
        return filter_(values, self.arrays, reverse)

    @property
    def nbytes(self):
        """Bytes held by the lattice arrays."""
        return sum(a.nbytes for a in self.arrays.values() if isinstance(a, np.ndarray))
