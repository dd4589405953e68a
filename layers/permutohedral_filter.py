r"""PermutohedralFilter: one normalised Gaussian message-passing step of CRF-as-RNN.

Bottoms: ``values`` P of shape (N, C, H, W) (the soft-maxed marginals) and ``image`` I of shape
(N, K >= 3, H, W) (the net's mean-subtracted BGR input; channels 0..2 are read). Top: (N, C, H, W).

Forward, per image n, with P_n viewed as C planes of H·W pixels (spec crfasrnn.md §1.5, §1.6, §2.1):

.. math:: \mathrm{top}_n = \mathrm{norm}_n \odot K_n P_n, \qquad \mathrm{norm}_n = 1 / (K_n \mathbb{1} + 10^{-20})

where K_n is the permutohedral lattice filter (an approximate Gaussian, Adams et al. 2010) on the features

* ``kernel: SPATIAL``:   f(p) = (x/θγ, y/θγ)                       (d = 2; same lattice for every image)
* ``kernel: BILATERAL``: f(p) = (x/θα, y/θα, I0/θβ, I1/θβ, I2/θβ)  (d = 5; one lattice per image)

with x the column and y the row of pixel p. The norm multiplies every class plane after filtering
(densecrf's NORMALIZE_AFTER); the lattice does that multiplication in its slice pass
(``filter(..., scale=norm)``), and the backward's in its splat pass.

Backward: the top is linear in P, top = D K P with D = diag(norm), so ``∂P = Kᵀ D ∂top``: multiply the
diff by the norm, then filter with ``reverse=True``. Why that is Kᵀ: the lattice filter is
K = α Sᵀ B_d ⋯ B_1 B_0 S (splat S, one blur B_j per lattice axis, slice Sᵀ with the same barycentric
weights), and every B_j = I + ½(P_j + P_jᵀ) is symmetric, so Kᵀ = α Sᵀ B_0 B_1 ⋯ B_d S — the same filter
with the axes blurred in reverse order (spec crfasrnn.md §3.6). K itself is not symmetric (the B_j do not
commute), so the plain filter would give a wrong gradient. The features are constants: nothing flows
into the image (its diff, when asked for, is zero, as in the reference).

Lattice reuse: :class:`LatticeCache` builds the spatial lattice (and its norm) once per (H, W, θγ) and each
bilateral lattice once per distinct image content, so the 2T filter layers of an unrolled mean-field net
(and the backward that follows the forward) share one build per image, as the reference does.
"""
import contextlib
import hashlib
from collections import OrderedDict

import numpy as np

from crfrnn_np.config import BILATERAL_LATTICES, SPATIAL_LATTICES
from crfrnn_np.layer import Layer, register_layer

#: Added to K𝟙 before inverting (the reference's float literal; K𝟙 > 0, so it never matters in practice).
NORM_EPSILON = 1e-20


class LatticeCache:
    """Permutohedral lattices and their normalisation factors, built once and shared.

    On the ``cuda`` backend the norm of an entry is a device array, made on the device.

    Parameters
    ----------
    backend : {"cpu", "cuda", "reference"}
        Backend of the lattices built here.
    capacity : int
        How many bilateral lattices to keep (least recently used dropped first); ``reserve`` raises it to
        the batch size so that a forward's lattices survive until its backward.
    """

    def __init__(self, backend="cpu", capacity=BILATERAL_LATTICES):
        self.backend = backend
        self.capacity = int(capacity)
        self._spatial = OrderedDict()
        self._bilateral = OrderedDict()
        self._bilateral_on_device = OrderedDict()
        self._pinned = None
        self.builds = 0

    def reserve(self, n):
        """Keep at least ``n`` bilateral lattices (one per image of a batch)."""
        self.capacity = max(self.capacity, int(n))

    def clear(self):
        self._spatial.clear()
        self._bilateral.clear()
        self._bilateral_on_device.clear()

    @contextlib.contextmanager
    def pinned(self):
        """Within this block, a bilateral lookup of the very same image array (address, shape, strides,
        dtype) reuses the first lookup's entry without hashing the pixels again. The caller promises that
        the images are not written inside the block (MultiStageMeanfield: the 2T filters of one forward)."""
        outer = self._pinned
        if outer is None:
            self._pinned = {}
        try:
            yield self
        finally:
            if outer is None:
                self._pinned = None

    def _build(self, features, dtype, dim=None):
        from crfrnn_np.lattice import PermutohedralLattice
        if dim is not None:                      # features made on the device (cuda backend)
            lattice = PermutohedralLattice.from_device_features(features, dim)
        else:
            lattice = PermutohedralLattice(features, backend=self.backend)
        if self.backend == "cuda" and lattice._impl is not None:
            # the norm stays on the device (a device array; only the device path of the filter uses it)
            self.builds += 1
            return lattice, lattice._impl.device_norm(dtype, NORM_EPSILON)
        ones = np.ones((1, features.shape[0]), dtype=dtype)
        norm = 1.0 / (lattice.filter(ones)[0] + NORM_EPSILON)
        self.builds += 1
        return lattice, norm.astype(dtype, copy=False)

    def spatial(self, height, width, theta_gamma, dtype):
        """``(lattice, norm (H*W,))`` of the spatial kernel for an H x W image."""
        from crfrnn_np.lattice import spatial_features
        key = (int(height), int(width), float(theta_gamma), np.dtype(dtype).str)
        entry = self._spatial.get(key)
        if entry is None:
            if self.backend == "cuda":          # the features made on the device: nothing crosses
                from crfrnn_np.lattice.cuda import spatial_features_device
                entry = self._build(spatial_features_device(height, width, theta_gamma), dtype, dim=2)
            else:
                entry = self._build(spatial_features(height, width, theta_gamma), dtype)
            self._spatial[key] = entry
            while len(self._spatial) > SPATIAL_LATTICES:
                self._spatial.popitem(last=False)
        return entry

    def bilateral(self, image, theta_alpha, theta_beta, dtype):
        """``(lattice, norm (H*W,))`` of the bilateral kernel for one image (K >= 3, H, W)."""
        if self._pinned is not None:
            fast = (image.__array_interface__["data"][0], image.shape, image.strides, image.dtype.str,
                    float(theta_alpha), float(theta_beta), np.dtype(dtype).str)
            entry = self._pinned.get(fast)
            if entry is None:
                entry = self._pinned[fast] = self._bilateral_entry(image, theta_alpha, theta_beta, dtype)
            return entry
        return self._bilateral_entry(image, theta_alpha, theta_beta, dtype)

    def bilateral_batch_device(self, image, theta_alpha, theta_beta, dtype):
        """``[(lattice, norm)]`` of the bilateral kernel for every image of an (N, K >= 3, H, W) image blob,
        built on the device from its device copy (:meth:`bilateral_device`): the one lookup of the
        PermutohedralFilter layers and of MultiStageMeanfield's FUSED engine on the ``cuda`` backend."""
        data, version = image.gpu_data(), image.data_version()
        return [self.bilateral_device(data[i], (version, i), theta_alpha, theta_beta, dtype)
                for i in range(image.shape[0])]

    def bilateral_device(self, image, version, theta_alpha, theta_beta, dtype):
        """``(lattice, norm)`` of the bilateral kernel for one image on the device (``cuda`` backend).

        Parameters
        ----------
        image : device array, (K >= 3, H, W), C-contiguous
        version : tuple
            What names the image's contents: ``(blob.data_version(), index in the batch)``. The image is
            never read back to hash it (that would cross to the host): an entry is reused while the blob's
            data has not been handed out for writing since the build, and rebuilt otherwise, into the old
            entry's device arrays (:meth:`.CudaLattice.rebuild`) -- so the lattice of one forward serves its
            2T filters and the backward, and a forward on a new image allocates nothing.
        """
        (serial, stamp), index = version
        key = (serial, index, tuple(image.shape), float(theta_alpha), float(theta_beta), np.dtype(dtype).str)
        found = self._bilateral_on_device.get(key)
        if found is not None and found[0] == stamp:
            self._bilateral_on_device.move_to_end(key)
            return found[1]
        from crfrnn_np.lattice.cuda import bilateral_features_device
        if found is not None and found[1][0]._impl is not None:
            # the same blob written since: built again into the previous build's arrays (no allocation)
            lattice, norm = entry = found[1]
            impl = lattice._impl
            impl.rebuild(bilateral_features_device(image, theta_alpha, theta_beta, out=impl.features))
            impl.device_norm(dtype, NORM_EPSILON, out=norm)
            self.builds += 1
        else:
            entry = self._build(bilateral_features_device(image, theta_alpha, theta_beta), dtype, dim=5)
        self._bilateral_on_device[key] = (stamp, entry)
        self._bilateral_on_device.move_to_end(key)
        while len(self._bilateral_on_device) > self.capacity:
            self._bilateral_on_device.popitem(last=False)
        return entry

    def _bilateral_entry(self, image, theta_alpha, theta_beta, dtype):
        from crfrnn_np.lattice import bilateral_features
        rgb = np.ascontiguousarray(image[:3])
        digest = hashlib.blake2b(memoryview(rgb).cast("B"), digest_size=16).digest()
        key = (rgb.shape, rgb.dtype.str, float(theta_alpha), float(theta_beta), np.dtype(dtype).str, digest)
        entry = self._bilateral.get(key)
        if entry is None:
            features = bilateral_features(rgb, theta_alpha, theta_beta)
            entry = self._build(features, dtype)
            self._bilateral[key] = entry
            while len(self._bilateral) > self.capacity:
                self._bilateral.popitem(last=False)
        else:
            self._bilateral.move_to_end(key)
        return entry


def _planes(image, c, pixels):
    """A C-contiguous (C, H, W) image array viewed as (C, H*W) without a copy (writes go through)."""
    if not image.flags.c_contiguous:
        raise ValueError("PermutohedralFilter: an image of the output is not C-contiguous")
    return image.reshape(c, pixels)


def _filter_into(lattice, planes, norm, reverse, out):
    """``out = diag(norm) K planes`` (``K^T diag(norm) planes`` when ``reverse``), (C, H*W); ``out`` may be
    ``planes`` itself (in-place layers)."""
    if np.may_share_memory(planes, out):
        out[...] = lattice.filter(planes, reverse=reverse, scale=norm)
    else:
        lattice.filter(planes, reverse=reverse, scale=norm, out=out)


@register_layer("PermutohedralFilter")
class PermutohedralFilterLayer(Layer):
    """Normalised permutohedral (Gaussian) filtering of C class planes; see the module docstring.

    Parameters (``permutohedral_param``)
    ------------------------------------
    kernel : SPATIAL | BILATERAL
    theta_alpha, theta_beta : float
        Bilateral spatial and colour bandwidths.
    theta_gamma : float
        Spatial-kernel bandwidth.

    Attributes
    ----------
    cache : LatticeCache
        Where the lattices come from: the net's (:attr:`Layer.lattice_cache`, shared by all its filters), or
        the layer's own when it is made outside a net.
    """

    exact_num_bottom = 2
    exact_num_top = 1
    no_gradient_bottoms = {1: "the image only fixes the lattice features, which are constants"}

    def layer_setup(self, bottom, top):
        p = self.layer_param.permutohedral_param
        self.kernel = p.kernel
        self.theta_alpha = float(p.theta_alpha)
        self.theta_beta = float(p.theta_beta)
        self.theta_gamma = float(p.theta_gamma)
        thetas = ((self.theta_gamma,) if self.kernel == "SPATIAL"
                  else (self.theta_alpha, self.theta_beta))
        if any(not t > 0 for t in thetas):
            raise self.error("the bandwidths theta_* of a %s kernel must be positive" % self.kernel,
                             field="permutohedral_param")
        if not hasattr(self, "cache"):
            self.cache = self.lattice_cache or LatticeCache(self.backend)
        self._lattices = []

    def reshape(self, bottom, top):
        values, image = bottom
        if values.num_axes != 4 or image.num_axes != 4:
            raise self.shape_error("bottoms must be N x C x H x W, got values %s and image %s"
                                   % (values.shape_string(), image.shape_string()))
        n, _, h, w = values.shape
        if image.shape[0] != n or image.shape[2:] != (h, w) or image.shape[1] < 3:
            raise self.shape_error("image bottom '%s' %s must be N x (>=3) x H x W like values '%s' %s"
                                   % (image.name, image.shape_string(), values.name, values.shape_string()))
        self.cache.reserve(n)
        top[0].reshape(values.shape)
        self._shape = values.shape

    def device_lattice_bytes(self):
        """``{lattice: bytes}`` of device memory the lattices of this layer's filtering take at the current
        shape (:func:`crfrnn_np.lattice.cuda.device_bytes`), keyed so that a net counts each lattice once
        however many filter layers share it (the 2T filters of a mean-field sub-net share two)."""
        from crfrnn_np.lattice.cuda import device_bytes
        n, c, h, w = getattr(self, "_shape", (0, 0, 0, 0))
        if self.kernel == "SPATIAL":
            key, count, dim = ("SPATIAL", h, w, self.theta_gamma), 1, 2
        else:
            key, count, dim = ("BILATERAL", n, h, w, self.theta_alpha, self.theta_beta), n, 5
        return {key + (c,): count * device_bytes(h * w, dim, c, self.dtype.itemsize)}

    def lattices(self, image):
        """``[(lattice, norm (H*W,))]`` per image of the batch (cached)."""
        n, _, h, w = image.shape
        if self.kernel == "SPATIAL":
            return [self.cache.spatial(h, w, self.theta_gamma, self.dtype)] * n
        if self.backend == "cuda":              # features from the device image, no copy either way
            return self.cache.bilateral_batch_device(image, self.theta_alpha, self.theta_beta, self.dtype)
        data = image.cpu_data()              # read only: a device copy of the image stays valid
        return [self.cache.bilateral(data[i], self.theta_alpha, self.theta_beta, self.dtype)
                for i in range(n)]

    def forward_cpu(self, bottom, top):
        values, image = bottom
        n, c, h, w = values.shape
        self._lattices = self.lattices(image)
        for i, (lattice, norm) in enumerate(self._lattices):
            # message passing (lattice filter) and normalisation (folded into the filter's slice), written
            # into the top (which may be a view whose images are contiguous, such as one half of
            # MultiStageMeanfield's stacked buffer)
            _filter_into(lattice, values.data[i].reshape(c, h * w), norm, False, _planes(top[0].data[i], c, h * w))

    def backward_cpu(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            # the features are treated as constants (as in the reference): the image gets a zero diff
            bottom[1].diff[...] = 0
        if not propagate_down[0]:
            return
        values, image = bottom
        n, c, h, w = values.shape
        lattices = self._lattices if len(self._lattices) == n else self.lattices(image)
        for i, (lattice, norm) in enumerate(lattices):
            # through the normalisation (D is diagonal), then the transposed filter Kᵀ = reverse blur order
            _filter_into(lattice, top[0].diff[i].reshape(c, h * w), norm, True, _planes(values.diff[i], c, h * w))

    # -- the cuda backend: the values, the norm and the result stay on the device ----------------------------
    def _device_norm(self, norm):
        """The device copy of a lattice's norm (made once per lattice: the cache keeps the host array alive,
        and the entry holds it so its id is not reused)."""
        if hasattr(norm, "copy_to_host"):         # made on the device by the cache (cuda backend)
            return norm
        from numba import cuda
        entry = self._device_norms.get(id(norm)) if hasattr(self, "_device_norms") else None
        if entry is None or entry[0] is not norm:
            if not hasattr(self, "_device_norms") or len(self._device_norms) > 4 * self.cache.capacity + 4:
                self._device_norms = {}
            entry = self._device_norms[id(norm)] = (norm, cuda.to_device(norm))
        return entry[1]

    def _filter_device(self, lattices, source, target, reverse):
        from crfrnn_np import cuda_ops
        n, c = source.shape[:2]
        pixels = source.size // max(n * c, 1)
        for i, (lattice, norm) in enumerate(lattices):
            out = target[i].reshape(c, pixels)
            if lattice._impl is None or c == 0:
                cuda_ops.fill(out, 0)
                continue
            lattice._impl.filter_device(source[i].reshape(c, pixels), reverse, self._device_norm(norm), out)

    def forward_gpu(self, bottom, top):
        values, image = bottom
        self._lattices = self.lattices(image)
        self._filter_device(self._lattices, values.gpu_data(), top[0].mutable_gpu_data(), False)

    def backward_gpu(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            from crfrnn_np import cuda_ops
            cuda_ops.fill(bottom[1].mutable_gpu_diff(), 0)
        if not propagate_down[0]:
            return
        values, image = bottom
        lattices = self._lattices if len(self._lattices) == values.shape[0] else self.lattices(image)
        self._filter_device(lattices, top[0].gpu_diff(), values.mutable_gpu_diff(), True)
