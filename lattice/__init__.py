r"""Permutohedral lattice filtering (Adams, Baek and Davis 2010) for the dense CRF's Gaussian messages.

::

    from crfrnn_np.lattice import PermutohedralLattice, bilateral_features
    lat = PermutohedralLattice(bilateral_features(image, 160.0, 3.0), backend="cpu")
    norm = 1.0 / (lat.filter(np.ones((1, n), np.float32))[0] + 1e-20)
    msg = lat.filter(q, scale=norm)                # forward:  diag(norm) K q, q (C, N)
    grad_q = lat.filter(top_diff, reverse=True, scale=norm)   # backward: K^T diag(norm) g

One build (embed, enclosing simplex, hash table, blur neighbours) serves every filter call; a filter is
splat -> blur -> slice and costs O(N (d+1) C). ``reverse=True`` applies the exact transpose K^T (see
:mod:`crfrnn_np.lattice.reference` for the derivation).

Backends share one signature:

* ``"reference"`` -- :mod:`.reference`, plain NumPy, slow, the readable oracle;
* ``"cpu"`` -- :mod:`.cpu`, ``numba.njit`` kernels (parallel over vertices and pixels);
* ``"cuda"`` -- :mod:`.cuda`, ``numba.cuda`` kernels, lattice arrays resident on the device.
"""
import numpy as np

from ..errors import BackendError, ShapeError

__all__ = ["PermutohedralLattice", "spatial_features", "bilateral_features", "BACKENDS"]

BACKENDS = ("cpu", "cuda", "reference")

# Largest |elevated coordinate| accepted: keys are int32 and lattice arithmetic is float32, whose
# integers are exact up to 2^24.
_MAX_ELEVATED = float(2 ** 24)


def _check_features(features):
    """Features as a C-contiguous float32 (N, d) array, or a ShapeError saying what is wrong."""
    arr = np.asarray(features)
    if arr.dtype.kind not in "biuf":
        raise ShapeError("lattice features: dtype %s is not a real number type" % arr.dtype)
    if arr.ndim != 2:
        raise ShapeError("lattice features: expected a 2-D (N, d) array, got shape %s" % (arr.shape,))
    n, d = arr.shape
    if d < 1:
        raise ShapeError("lattice features: need d >= 1 feature dimensions, got shape %s" % (arr.shape,))
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if n and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ShapeError("lattice features (N=%d, d=%d): non-finite value %r at point %d, feature %d"
                         % (n, d, float(arr[bad[0], bad[1]]), bad[0], bad[1]))
    if n:
        from .reference import scale_factors
        bound = float(np.abs(arr).max()) * float(scale_factors(d).max()) * (d + 1)
        if bound >= _MAX_ELEVATED:
            raise ShapeError("lattice features (N=%d, d=%d): magnitude %g too large for the lattice "
                             "(scaled coordinates must stay below 2^24)" % (n, d, float(np.abs(arr).max())))
    return arr


class PermutohedralLattice:
    r"""A permutohedral lattice built from per-point features, applied to many value planes.

    Parameters
    ----------
    features : array_like, (N, d)
        Pixel-major features (point i has ``features[i]``), any real dtype; converted to C-contiguous
        float32 (all lattice arithmetic is float32, as in the C++ code). Must be finite. N may be 0.
    backend : {"cpu", "cuda", "reference"}

    Attributes
    ----------
    num_points : int
        N.
    dim : int
        d.
    num_vertices : int
        M, the number of distinct lattice vertices touched by the points.
    nbytes : int
        Memory held by the built lattice (vertex ids, weights, neighbour table, gather index).

    Notes
    -----
    ``filter`` computes :math:`K x` with :math:`K = \alpha S^T B_d \cdots B_0 S`, which approximates the
    Gaussian :math:`K_{ij} \approx \exp(-\lVert f_i - f_j \rVert^2 / 2)` (spec crfasrnn.md §3).
    ``filter(x, reverse=True)`` computes :math:`K^T x` exactly.
    """

    def __init__(self, features, backend="cpu"):
        if backend not in BACKENDS:
            raise BackendError("lattice backend %r unknown; choose one of %s" % (backend, ", ".join(BACKENDS)))
        feats = _check_features(features)
        self.backend = backend
        self.num_points, self.dim = feats.shape
        self._impl = None
        if self.num_points == 0:
            return
        if backend == "reference":
            from .reference import ReferenceLattice
            self._impl = ReferenceLattice(feats)
        elif backend == "cpu":
            from .cpu import CpuLattice
            self._impl = CpuLattice(feats)
        else:
            from .cuda import CudaLattice
            self._impl = CudaLattice(feats)

    @classmethod
    def from_device_features(cls, features, dim):
        """A ``"cuda"`` lattice from features already on the device, built without any copy.

        Parameters
        ----------
        features : numba.cuda device array, (N*d,), float32
            Point-major features, as :func:`.cuda.spatial_features_device` and
            :func:`.cuda.bilateral_features_device` make them (not checked for finiteness: that would need
            them on the host; see :class:`.cuda.CudaLattice`).
        dim : int
            d.
        """
        from .cuda import CudaLattice
        lattice = cls.__new__(cls)
        lattice.backend = "cuda"
        lattice.dim = int(dim)
        lattice.num_points = features.shape[0] // lattice.dim
        lattice._impl = CudaLattice(features, dim=lattice.dim) if lattice.num_points else None
        return lattice

    @property
    def num_vertices(self):
        return 0 if self._impl is None else self._impl.num_vertices

    @property
    def nbytes(self):
        return 0 if self._impl is None else self._impl.nbytes

    @property
    def arrays(self):
        """The built lattice record (``vertex``, ``weights``, ``neighbours``, ``num_vertices``, and on the CPU
        ``entries``; see :mod:`.reference` and :mod:`.cpu`) for code that runs the stages itself (``splat``,
        ``blur``, ``slice_`` of the backend's module); None for the ``"cuda"`` backend and for N = 0."""
        return getattr(self._impl, "arrays", None) if self.backend != "cuda" else None

    def filter(self, values, reverse=False, scale=None, out=None):
        """Filter value planes through the lattice.

        Parameters
        ----------
        values : array_like, (C, N) or (N,)
            Channel-planar values. float32 and float64 are kept; other real dtypes are converted to
            float64, float16 to float32. A 1-D array is one channel and gives a 1-D result.
        reverse : bool
            False: ``K x``; True: the transpose ``K^T x`` (blur axes in reverse order).
        scale : array_like, (N,), optional
            A per-pixel factor D = diag(scale), converted to the result dtype: the forward filter gives
            ``D K x`` (every output pixel times its factor), the reverse one ``K^T D x`` (every input pixel
            times its factor) -- the normalised filter and its transpose. Bit for bit the same as
            multiplying separately; the ``"cpu"`` backend folds it into the slice (splat) pass.
        out : ndarray, optional
            C-contiguous array of the result's shape and dtype to write into; must not overlap ``values``.

        Returns
        -------
        ndarray, same shape as ``values``, float32 or float64 (``out`` when given)
        """
        arr = np.asarray(values)
        if arr.dtype.kind not in "biuf":
            raise ShapeError("lattice filter: values dtype %s is not a real number type" % arr.dtype)
        if arr.dtype == np.float16:
            dtype = np.float32
        elif arr.dtype in (np.float32, np.float64):
            dtype = arr.dtype.type
        else:
            dtype = np.float64
        one_d = arr.ndim == 1
        if one_d:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.num_points:
            raise ShapeError("lattice filter: values of shape %s do not match the lattice's N=%d points "
                             "(expected (C, %d))" % (np.shape(values), self.num_points, self.num_points))
        arr = np.ascontiguousarray(arr, dtype=dtype)
        if scale is not None:
            scale = np.asarray(scale)
            if scale.shape != (self.num_points,) or scale.dtype.kind not in "biuf":
                raise ShapeError("lattice filter: scale of shape %s and dtype %s must be a real (%d,) array"
                                 % (scale.shape, scale.dtype, self.num_points))
            scale = np.ascontiguousarray(scale, dtype=dtype)
        target = None
        if out is not None:
            expected = (self.num_points,) if one_d else arr.shape
            if (not isinstance(out, np.ndarray) or out.shape != expected or out.dtype != dtype
                    or not out.flags.c_contiguous or not out.flags.writeable):
                raise ShapeError("lattice filter: out must be a writeable C-contiguous %s array of shape %s"
                                 % (np.dtype(dtype), expected))
            if np.may_share_memory(out, arr):
                raise ShapeError("lattice filter: out must not overlap the values")
            target = out.reshape(arr.shape)
        if self._impl is None or arr.shape[0] == 0:
            result = np.zeros(arr.shape, dtype=dtype) if target is None else target
            result[...] = 0
        elif self.backend == "cpu":
            result = self._impl.filter(arr, bool(reverse), scale, target)
        else:
            if scale is not None and reverse:
                arr = arr * scale
            result = self._impl.filter(arr, bool(reverse))
            if scale is not None and not reverse:
                result = np.multiply(result, scale, out=result)
            if target is not None:
                target[...] = result
                result = target
        if out is not None:
            return out
        return result[0] if one_d else result

    def __repr__(self):
        return "PermutohedralLattice(N=%d, d=%d, M=%d, backend=%r)" % (
            self.num_points, self.dim, self.num_vertices, self.backend)


def _pixel_grid(height, width):
    """(x, y) of every pixel, row-major p = y*W + x, as two float32 (H*W,) arrays."""
    y, x = np.divmod(np.arange(height * width, dtype=np.int64), width)
    return x.astype(np.float32), y.astype(np.float32)


def spatial_features(height, width, theta_gamma, dtype=np.float32):
    """Features of the spatial (smoothness) kernel: ``(x / theta_gamma, y / theta_gamma)``.

    Parameters
    ----------
    height, width : int
    theta_gamma : float
        Spatial bandwidth in pixels (> 0).
    dtype : numpy dtype

    Returns
    -------
    ndarray, (H*W, 2)
        Row p = y*W + x holds (x/θγ, y/θγ); x is the column index.
    """
    height, width = int(height), int(width)
    if height < 0 or width < 0:
        raise ShapeError("spatial_features: negative image size %dx%d" % (height, width))
    if not theta_gamma > 0:
        raise ShapeError("spatial_features: theta_gamma must be > 0, got %r" % (theta_gamma,))
    x, y = _pixel_grid(height, width)
    inv = np.float32(theta_gamma)
    feats = np.empty((height * width, 2), dtype=np.float32)
    feats[:, 0] = x / inv
    feats[:, 1] = y / inv
    return feats.astype(dtype, copy=False)


def bilateral_features(image, theta_alpha, theta_beta):
    """Features of the bilateral (appearance) kernel: ``(x/θα, y/θα, c0/θβ, c1/θβ, c2/θβ)``.

    Parameters
    ----------
    image : array_like, (K, H, W), K >= 3
        Channel-planar image (the CRF's ``bottom[2]``: mean-subtracted BGR); only channels 0..2 are used.
    theta_alpha : float
        Spatial bandwidth in pixels (> 0).
    theta_beta : float
        Colour bandwidth (> 0).

    Returns
    -------
    ndarray, (H*W, 5), float32
        Row p = y*W + x; x is the column index.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[0] < 3:
        raise ShapeError("bilateral_features: image must be (K>=3, H, W), got shape %s" % (img.shape,))
    if img.dtype.kind not in "biuf":
        raise ShapeError("bilateral_features: image dtype %s is not a real number type" % img.dtype)
    if not theta_alpha > 0 or not theta_beta > 0:
        raise ShapeError("bilateral_features: theta_alpha and theta_beta must be > 0, got %r, %r"
                         % (theta_alpha, theta_beta))
    _, height, width = img.shape
    x, y = _pixel_grid(height, width)
    ta, tb = np.float32(theta_alpha), np.float32(theta_beta)
    feats = np.empty((height * width, 5), dtype=np.float32)
    feats[:, 0] = x / ta
    feats[:, 1] = y / ta
    for k in range(3):
        feats[:, 2 + k] = img[k].reshape(-1).astype(np.float32) / tb
    return feats
