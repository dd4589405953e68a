r"""numba.cuda kernels for the permutohedral lattice, with the lattice arrays resident on the device.

Build (per lattice), nothing crossing between host and device when the features are made there:

0. the features themselves, from the image on the device (:func:`spatial_features_device`,
   :func:`bilateral_features_device`: the host's :func:`.spatial_features` / :func:`.bilateral_features`
   bit for bit); host features are also accepted, and copied across once;
1. ``_embed_kernel`` on the device, one thread per point: scale factors, elevation, enclosing simplex and
   barycentric weights by the *same* ``numba.njit`` helpers the CPU build uses (:func:`.cpu.elevate`,
   :func:`.cpu.enclosing_simplex`, hence :func:`.cpu.round_half_even`); numba compiles them for the CUDA
   target when the kernel calls them.
2. On the device too: the hash table (atomic compare-and-swap), the vertex numbering, the blur neighbours
   and the vertex -> (pixel, weight) gather index (:func:`.cuda_build.build_on_device`, array for array the
   host's :func:`.cpu.build_from_simplices`). The number of vertices M stays on the device: per-vertex
   arrays and buffers are sized by the bound N (d+1), and the per-vertex kernels stop at M.
3. The arrays the filter reads stay on the device for every filter call; the normalisation
   ``1 / (K 1 + eps)`` is computed there (:meth:`CudaLattice.device_norm`).

Filter (per call), all on the device, buffers (N (d+1) + 1, C) with row 0 the zero row, made once per
lattice and channel count:

* ``_splat_kernel``: thread v gathers its pixels' weighted values into row v + 1 (no atomics);
* ``_blur_kernel``: thread v computes ``new[v+1, k] = old[v+1, k] + 0.5 (old[n1+1, k] + old[n2+1, k])`` for
  every k, one launch per axis, axes reversed for the transpose;
* ``_slice_kernel``: thread i sums ``alpha w_ir buf[vertex_ir + 1, k]`` over r in order for every k and
  writes the channel-planar output (consecutive threads write consecutive pixels);
* ``_scale_columns_kernel``: the normalisation ``diag(norm)``, after the slice (forward) or before the
  splat (transpose).

Block size and the per-thread scratch bound live in :mod:`crfrnn_np.config`. float32 and float64 values work
(kernels specialise on the buffer dtype); lattice arithmetic is float32 as everywhere. Every kernel is
declared with its launch signatures (:mod:`crfrnn_np.cuda_kernel`) and compiled to PTX in the tests.
"""
import math

import numpy as np
from numba import cuda

from ..backend import check_cuda, cuda_available  # noqa: F401  (cuda_available: the one definition, re-exported)
from ..cuda_kernel import F32, I32, I64, gpu_kernel, grid_1d
from ..errors import ShapeError
from ..config import MAX_DIM
from .cpu import build_from_simplices, elevate, enclosing_simplex
from .cuda_build import build_on_device, workspace_array
from .hash_table import table_bits
from .reference import slice_factor

__all__ = ["CudaLattice", "cuda_available", "spatial_features_device", "bilateral_features_device"]

# Local-array lengths must be compile-time integer constants (the CUDA compiler rejects an expression such
# as ``_D1 + 1`` as a shape): the elevated point has d+1 coordinates, the barycentric buffer d+2.
_D1 = MAX_DIM + 1
_D2 = MAX_DIM + 2


_grid = grid_1d


# Launch signatures (see crfrnn_np.cuda_kernel): lattice arithmetic is float32 whatever the values' type f;
# counts and offsets are the int64 of build_from_simplices, vertex ids int32, Python ints int64.
@gpu_kernel(lambda f: [(F32[::1], I64, F32, I32[:, ::1], I32[:, ::1], F32[:, ::1])])
def _embed_kernel(features, d, inv_d1, rem0, rank, weights):
    """Thread i: point i's simplex. features (N*d,) f32; rem0, rank (N, d+1) i32; weights (N, d+1) f32.

    The scale factors are computed here, with :func:`.reference.scale_factors`' float64 arithmetic and
    float32 rounding (IEEE square root and division on the device too), so nothing is copied for them."""
    i = cuda.grid(1)
    if i >= rem0.shape[0]:
        return
    feat = cuda.local.array(MAX_DIM, np.float32)
    sc = cuda.local.array(MAX_DIM, np.float32)
    elevated = cuda.local.array(_D1, np.float32)
    r0 = cuda.local.array(_D1, np.int32)
    rk = cuda.local.array(_D1, np.int32)
    bary = cuda.local.array(_D2, np.float32)
    inv_std_dev = np.float64(np.float32(math.sqrt(2.0 / 3.0) * (d + 1)))
    finite = True
    for j in range(d):
        feat[j] = features[i * d + j]
        if not math.isfinite(feat[j]):
            # a NaN / inf feature (a non-finite image): placed at 0 with NaN weights, so its pixel's
            # filtered values are NaN rather than the build failing on an undefined rounding
            feat[j] = 0
            finite = False
        sc[j] = np.float32(1.0 / math.sqrt((j + 1.0) * (j + 2.0)) * inv_std_dev)
    elevate(feat, 0, d, sc, elevated)
    enclosing_simplex(elevated, d, inv_d1, r0, rk, bary)
    for r in range(d + 1):
        rem0[i, r] = r0[r]
        rank[i, r] = rk[r]
        weights[i, r] = bary[r] if finite else np.float32(math.nan)


@gpu_kernel(lambda f: [(f[:, ::1], I64[::1], I32[::1], F32[::1], I64[::1], f[:, ::1])])
def _splat_kernel(values, offsets, pixel, weight, count, buf):
    """Thread v < M (``count[0]``): ``buf[v+1, :] = sum_e weight[e] values[:, pixel[e]]``; threads v < C
    also zero row 0. values (C, N); buf (>= M+1, C)."""
    v = cuda.grid(1)
    c = values.shape[0]
    m = count[0]
    if v < c:
        buf[0, v] = 0
    if v >= m:
        return
    for k in range(c):
        buf[v + 1, k] = 0
    for e in range(offsets[v], offsets[v + 1]):
        w = weight[e]
        p = pixel[e]
        for k in range(c):
            buf[v + 1, k] += w * values[k, p]


@gpu_kernel(lambda f: [(f[:, ::1], f[:, ::1], I32[:, :, ::1], I64[::1], I64, f)])
def _blur_kernel(old, new, neighbours, count, j, half):
    """Thread v < M (``count[0]``): one blur tap along axis j for vertex v, all C channels (a row of C
    contiguous values); thread 0 also zeroes row 0 of ``new``."""
    v = cuda.grid(1)
    c = old.shape[1]
    m = count[0]
    if v == 0:
        for k in range(c):
            new[0, k] = 0
    if v >= m:
        return
    a = neighbours[j, v, 0] + 1
    b = neighbours[j, v, 1] + 1
    for k in range(c):
        new[v + 1, k] = old[v + 1, k] + half * (old[a, k] + old[b, k])


@gpu_kernel(lambda f: [(f[:, ::1], I32[:, ::1], F32[:, ::1], f, f[:, ::1])])
def _slice_kernel(buf, vertex, weights, alpha, out):
    """Thread i: ``out[k, i] = sum_r (alpha w_ir) buf[vertex_ir + 1, k]`` for every k, r in order
    (consecutive threads write consecutive pixels of each channel plane)."""
    i = cuda.grid(1)
    n = vertex.shape[0]
    if i >= n:
        return
    for k in range(buf.shape[1]):
        acc = buf[0, k]
        for r in range(vertex.shape[1]):
            acc += (weights[i, r] * alpha) * buf[vertex[i, r] + 1, k]
        out[k, i] = acc


@gpu_kernel(lambda f: [(f[:, ::1], f[::1], f[:, ::1])])
def _scale_columns_kernel(values, scale, out):
    """Thread i: ``out[k, i] = values[k, i] scale[i]`` for every k (``out`` may be ``values``)."""
    i = cuda.grid(1)
    if i >= values.shape[1]:
        return
    s = scale[i]
    for k in range(values.shape[0]):
        out[k, i] = values[k, i] * s


@gpu_kernel(lambda f: [(f[:, ::1], f, f, f[::1])])
def _norm_kernel(k1, one, eps, norm):
    """Thread i: ``norm[i] = 1 / (k1[0, i] + eps)``, the normalisation of the filtered ones."""
    i = cuda.grid(1)
    if i < norm.shape[0]:
        norm[i] = one / (k1[0, i] + eps)


@gpu_kernel(lambda f: [(I64, F32, F32[::1])])
def _spatial_features_kernel(width, theta, features):
    """Thread p = y W + x: ``features[2p:2p+2] = (x / theta, y / theta)`` in float32, as
    :func:`.spatial_features` divides on the host (IEEE division: the same bits)."""
    p = cuda.grid(1)
    if p >= features.shape[0] // 2:
        return
    y = p // width
    features[2 * p] = np.float32(p - y * width) / theta
    features[2 * p + 1] = np.float32(y) / theta


@gpu_kernel(lambda f: [(f[:, :, ::1], F32, F32, F32[::1])])
def _bilateral_features_kernel(image, theta_alpha, theta_beta, features):
    """Thread p = y W + x: ``features[5p:5p+5] = (x/θα, y/θα, I0/θβ, I1/θβ, I2/θβ)`` in float32, as
    :func:`.bilateral_features` computes them on the host (each channel value rounded to float32, then
    divided). image (K >= 3, H, W)."""
    p = cuda.grid(1)
    width = image.shape[2]
    if p >= image.shape[1] * width:
        return
    y = p // width
    x = p - y * width
    features[5 * p] = np.float32(x) / theta_alpha
    features[5 * p + 1] = np.float32(y) / theta_alpha
    for k in range(3):
        features[5 * p + 2 + k] = np.float32(image[k, y, x]) / theta_beta


def spatial_features_device(height, width, theta_gamma):
    """:func:`.spatial_features` made on the device: a (H*W*2,) float32 device array, nothing copied."""
    features = cuda.device_array(int(height) * int(width) * 2, np.float32)
    if features.size:
        _spatial_features_kernel[_grid(int(height) * int(width))](int(width), np.float32(theta_gamma), features)
    return features


def bilateral_features_device(image, theta_alpha, theta_beta, out=None):
    """:func:`.bilateral_features` of a (K >= 3, H, W) C-contiguous device image, made on the device: a
    (H*W*5,) float32 device array (``out`` when given), nothing copied."""
    _, height, width = image.shape
    features = cuda.device_array(height * width * 5, np.float32) if out is None else out
    if features.size:
        _bilateral_features_kernel[_grid(height * width)](image, np.float32(theta_alpha), np.float32(theta_beta),
                                                          features)
    return features


def device_bytes(num_points, dim, channels, itemsize):
    """An upper bound on the device memory one lattice takes: its arrays, the build's transient ones, and the
    filter's buffers for ``channels`` value planes of ``itemsize`` bytes (for the check before allocating).

    Per (point, remainder) entry, E = N (d+1) of them: 24 bytes kept (vertex id, weight, offset, gather
    pixel and weight) plus 8 (d+1) for the neighbours ((d+1, E, 2) int32, sized by E), 56 transient
    (simplex, slots, flags, numbering, counts, cursor); 12 per table slot; the buffers are two (E + 1, C)
    and one (C, N), and the norm and its ones row.
    """
    entries = int(num_points) * (int(dim) + 1)
    slots = 1 << table_bits(max(entries, 1))
    kept = entries * (4 + 4 + 8 + 4 + 4) + entries * 8 * (int(dim) + 1)
    transient = entries * 56 + slots * 12
    buffers = (2 * (entries + 1) + int(num_points)) * int(channels) * int(itemsize) + 2 * int(num_points) * itemsize
    return kept + transient + buffers


#: The lattice arrays the filter kernels read, kept on the device.
_DEVICE_ARRAYS = ("vertex", "weights", "neighbours", "splat_offsets", "splat_pixel", "splat_weight", "count")


class CudaLattice:
    """The facade's ``"cuda"`` backend.

    Parameters
    ----------
    features : ndarray (N, d) float32 on the host, or a device array (N*d,) float32 with ``dim`` given
        Host features are copied across once; device features (:func:`spatial_features_device`,
        :func:`bilateral_features_device`) are used where they are, and then nothing at all crosses while
        the lattice is built.
    device_build : bool
        Build the index on the device (default); False builds it on the host from the device's simplices
        (the reference the tests compare the device build with; copies both ways).
    dim : int, optional
        d, for flat device features.

    Attributes
    ----------
    device_arrays : dict
        The lattice arrays on the device (``vertex``, ``weights``, ``neighbours``, ``splat_offsets``,
        ``splat_pixel``, ``splat_weight``, and ``count``, the (1,) int64 number of vertices M), kept across
        filter calls. Per-vertex arrays of a device build have room for ``capacity`` = N (d+1) vertices (M is
        not known on the host); those of a host build exactly M.
    built_on_device : bool
    features : device array, (N*d,), float32
        The features of the last build (a new image's may be written into it before :meth:`rebuild`).
    capacity : int
        The per-vertex rows the arrays (and the filter's buffers) have.

    Notes
    -----
    The device path checks nothing that would need the features on the host: a non-finite feature gives
    NaN weights for its point (so NaN in the filtered values at it and around it), not an error.
    """

    def __init__(self, features, device_build=True, dim=None):
        check_cuda()
        if hasattr(features, "copy_to_host"):        # a device array (also under the simulator)
            d = int(dim)
            n = features.shape[0] // d
            d_features = features
        else:
            n, d = features.shape
            d_features = cuda.to_device(np.ascontiguousarray(features, np.float32).reshape(-1))
        if d > MAX_DIM:
            raise ShapeError("lattice backend 'cuda': d=%d exceeds config.MAX_DIM=%d" % (d, MAX_DIM))
        self.num_points = n
        self.dim = d
        self.built_on_device = bool(device_build)
        self._workspace = {} if device_build else None
        self._buffers = {}
        self.features = d_features
        self._build(d_features)

    def _build(self, features):
        """Embed the (N*d,) device features and build the index: into the arrays of the previous build when
        there is one (a device build's workspace), else into new ones."""
        n, d1 = self.num_points, self.dim + 1
        ws = self._workspace
        # 1. per-point simplices on the device
        d_rem0 = workspace_array(ws, "rem0", (n, d1), np.int32)
        d_rank = workspace_array(ws, "rank", (n, d1), np.int32)
        d_weights = workspace_array(ws, "weights", (n, d1), np.float32)
        grid, block = _grid(n)
        _embed_kernel[grid, block](features, self.dim, np.float32(1.0 / d1), d_rem0, d_rank, d_weights)
        # 2. hash table, neighbours and gather index on the device (or, for the tests, on the host)
        if self.built_on_device:
            built = build_on_device(d_rem0, d_rank, d_weights, ws)
            self.capacity = n * d1
            self._num_vertices = None
        else:
            host = build_from_simplices(d_rem0.copy_to_host(), d_rank.copy_to_host(), d_weights.copy_to_host())
            built = {name: cuda.to_device(host[name]) for name in _DEVICE_ARRAYS if name not in ("weights", "count")}
            built["count"] = cuda.to_device(np.asarray([host["num_vertices"]], np.int64))
            self.capacity = self._num_vertices = host["num_vertices"]
            self._buffers = {}
        # 3. resident on the device from now on
        self.device_arrays = {name: (d_weights if name == "weights" else built[name]) for name in _DEVICE_ARRAYS}

    def rebuild(self, features):
        """Build again from new (N*d,) float32 device features of the same N and d (the next image of a
        net's input), reusing every device array and buffer of this lattice: nothing is allocated and nothing
        crosses. The norm must be made again (:meth:`device_norm` with its ``out``)."""
        if features.shape[0] != self.num_points * self.dim:
            raise ShapeError("lattice backend 'cuda': rebuild with %d feature values, the lattice has N=%d, d=%d"
                             % (features.shape[0], self.num_points, self.dim))
        self.features = features
        self._build(features)

    @property
    def num_vertices(self):
        """M, read from the device the first time it is asked for (one small copy; the filter never asks)."""
        if self._num_vertices is None:
            self._num_vertices = int(self.device_arrays["count"].copy_to_host()[0])
        return self._num_vertices

    @property
    def nbytes(self):
        """Bytes of device memory held by the lattice arrays."""
        return sum(a.nbytes for a in self.device_arrays.values())

    def _scratch(self, c, dtype):
        """The (capacity + 1, C) splat/blur buffers and a (C, N) pre-scale buffer for C channels of ``dtype``,
        made once per lattice and kept (the 2T filter calls of a forward and the backward allocate nothing)."""
        key = (c, np.dtype(dtype).str)
        if key not in self._buffers:
            rows = self.capacity + 1
            self._buffers[key] = (cuda.device_array((rows, c), dtype), cuda.device_array((rows, c), dtype),
                                  cuda.device_array((c, self.num_points), dtype))
        return self._buffers[key]

    def filter_device(self, values, reverse=False, scale=None, out=None):
        """Filter a (C, N) device array: ``D K x`` (``K^T D x`` when ``reverse``) with ``D = diag(scale)``
        (identity without ``scale``, a (N,) device array of the values' dtype). Writes ``out`` (a (C, N)
        device array, not ``values``) or returns a new one. Nothing crosses between host and device."""
        arrays = self.device_arrays
        dtype = np.dtype(values.dtype)
        c = values.shape[0]
        buf, other, scaled = self._scratch(c, dtype)
        if scale is not None and reverse:
            _scale_columns_kernel[_grid(self.num_points)](values, scale, scaled)
            values = scaled
        # one thread per vertex row the arrays have room for; those from M on return at once
        grid, block = _grid(max(self.capacity, c))
        _splat_kernel[grid, block](values, arrays["splat_offsets"], arrays["splat_pixel"],
                                   arrays["splat_weight"], arrays["count"], buf)
        half = dtype.type(0.5)
        grid, block = _grid(self.capacity)
        axes = range(self.dim, -1, -1) if reverse else range(self.dim + 1)
        for j in axes:
            _blur_kernel[grid, block](buf, other, arrays["neighbours"], arrays["count"], j, half)
            buf, other = other, buf
        if out is None:
            out = cuda.device_array((c, self.num_points), dtype)
        grid, block = _grid(self.num_points)
        _slice_kernel[grid, block](buf, arrays["vertex"], arrays["weights"],
                                   dtype.type(slice_factor(self.dim)), out)
        if scale is not None and not reverse:
            _scale_columns_kernel[grid, block](out, scale, out)
        return out

    def device_norm(self, dtype, eps, out=None):
        """``1 / (K 1 + eps)`` as a (N,) device array of ``dtype``, computed on the device (nothing crosses);
        written into ``out`` when given (a norm made before, after :meth:`rebuild`)."""
        from ..cuda_ops import fill
        t = np.dtype(dtype).type
        key = np.dtype(dtype).str
        ones = workspace_array(self._workspace, "norm_ones" + key, (1, self.num_points), dtype)
        fill(ones, 1)
        k1 = self.filter_device(ones, out=workspace_array(self._workspace, "norm_k1" + key, (1, self.num_points),
                                                          dtype))
        norm = cuda.device_array(self.num_points, dtype) if out is None else out
        _norm_kernel[_grid(self.num_points)](k1, t(1), t(eps), norm)
        return norm

    def filter(self, values, reverse=False):
        """``K x`` (``K^T x`` when ``reverse``) for host (C, N) float32/float64 values; returns a host array."""
        return self.filter_device(cuda.to_device(values), reverse).copy_to_host()
