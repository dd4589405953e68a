r"""The FUSED engine of MultiStageMeanfield on the ``cuda`` backend: the mean field in few numba.cuda kernels.

The device twin of :mod:`crfrnn_np.fused.meanfield` (the CPU FUSED engine): the same maths, rearranged for a
GPU instead of for CPU caches. The definition stays the step-layer sub-net of the STEPS engine
(:mod:`crfrnn_np.layers.multi_stage_meanfield`); the tests hold this engine to STEPS on the device and to the
CPU FUSED engine (``tests/fused/test_meanfield_cuda.py``). Everything stays on the device: the bottoms, the
top and the parameters are the blobs' device arrays, the lattices and their norms the cache's device ones.

=================================  ==================================================================
kernel                             replaces (per iteration t; x ∈ {spatial s, bilateral b})
=================================  ==================================================================
``_products_kernel``               once per forward: ``A_x = μ W_x`` (the three Compatibility steps'
                                   matrices folded into two)
``layers.crf_cuda.softmax``        Softmax of the first iteration, ``P_1 = softmax(Q0)`` (the step
                                   layer's own kernel)
``CudaLattice.filter_device``      the lattice filter of both PermutohedralFilter steps, *without* their
                                   normalisation (``K_x P_t``; ``K_xᵀ E`` in the backward)
``_logits_softmax_kernel``         both filters' normalisation, Compatibility (W_s, W_b), Eltwise SUM,
                                   Compatibility (μ), UnaryAdd and the next Softmax: one thread per pixel
                                   forms ``L_t = U − A_s (n_s ⊙ K_s P_t) − A_b (n_b ⊙ K_b P_t)`` for all
                                   classes and writes ``P_{t+1} = softmax(L_t)`` (``L_T``: the top)
``_backward_pixel_kernel``         the backward of Softmax and of the Split of P_t (``∂P = R_s + R_b``),
                                   the fan-out sum of UnaryAdd (``∂U += g``), and the backward of UnaryAdd,
                                   the three Compatibility steps, Eltwise and the normalisations, up to
                                   the lattice (``E_x = −n_x ⊙ A_xᵀ g``)
``_weight_partial_kernel``         the weight gradient of the Compatibility steps, ``∂A_x``: partial
                                   C x C sums over blocks of pixels, accumulated over the iterations
``_sum_blocks_kernel``,            once per backward: the blocks' sum, then ``∂W_x += μᵀ ∂A_x`` and
``_parameter_diff_kernel``         ``∂μ += Σ_x ∂A_x W_xᵀ``
=================================  ==================================================================

:data:`REPLACES` holds this table for the tests.

Forward, iteration t (L_0 = Q0, P_1 = softmax(Q0)):

.. math::

    L_t = U - \sum_x A_x\,(n_x \odot K_x P_t), \qquad P_{t+1} = \mathrm{softmax}(L_t), \qquad A_x = \mu W_x

exact in real arithmetic: μ (W_s S + W_b B) = A_s S + A_b B, and the normalisation ``n_x ⊙`` (a per-pixel
factor) is applied where the pixel pass reads the filtered planes instead of in a pass of its own.

Backward of iteration t, given g_t = ∂L_t (g_T the top's diff):

.. math::

    E_x = -n_x \odot A_x^T g_t, \quad \partial A_x \mathrel{+}= -g_t\,(n_x \odot K_x P_t)^T, \quad
    g_{t-1} = P_t \odot (\partial P_t - \langle \partial P_t, P_t \rangle), \quad
    \partial P_t = \sum_x K_x^T E_x

then ``∂U = Σ_{t≥1} g_t``, ``∂Q0 = g_0``, ``∂W_x += μᵀ ∂A_x``, ``∂μ += Σ_x ∂A_x W_xᵀ``. The pixel kernel that
makes g_{t-1} also makes the next ``E_x`` from it (and adds it to ∂U), so an iteration of the backward is
one partial-sum launch, the two reverse filters, and one pixel launch.

Launches and passes per iteration (batch of N images, d_s = 2 and d_b = 5 lattice dimensions). The filters
dominate the launch count: ``filter_device`` is one splat, d + 1 blurs and one slice, plus one scaling pass
when it is given the norm, which this engine never does (the norm is folded into the pixel kernels).
Measured under the simulator for N = 1 (``tests/fused/test_meanfield_cuda.py``):

* forward: 13 N + 1 launches (14; STEPS 22: 15 for its normalised filters, then Softmax, three
  Compatibility, and the scale and two axpby launches of Eltwise and UnaryAdd). Passes over (C, H·W)
  memory: the two splats read P_t, the two slices write K_x P_t, the pixel kernel reads U, K_s P_t, K_b P_t
  and writes P_{t+1}: 8 (STEPS about 24: its steps write and read S_t, B_t, the two weighted messages,
  M_t, Φ_t and L_t, and the norm makes its own read-modify-write pass).
* backward: 13 N + 2 launches (15; STEPS 43, among them 13 fills of diffs and three weight-gradient
  launches). Passes: the weight partial sums read g_t, K_s P_t, K_b P_t (each element is read by C or 2C
  threads, from the caches after the first), the two splats and the two slices, the pixel kernel reads
  P_t and both K_xᵀ E_x, writes g_{t-1}, E_s, E_b and updates ∂U: about 15 (STEPS about 56).

State kept for the backward (TRAIN phase, or :attr:`keep_iterations`), per iteration: P_t and the unnormalised
``K_s P_t``, ``K_b P_t`` (three (N, C, H·W) arrays); the TEST phase's forward keeps one set of buffers and
overwrites it, and a backward asked for afterwards (``force_backward``) runs the forward again, keeping, as
the other engines do. Device buffers are made once per shape and reused by every later forward.

Each kernel is checked against the step layers it replaces, on the same data
(tests/fused/cudasim_meanfield_cuda_kernels_check.py), and the whole engine against STEPS and the CPU.
"""

import numpy as np
from numba import cuda

from crfrnn_np.config import WEIGHT_DIFF_BLOCK
from crfrnn_np.cuda_kernel import I64, gpu_kernel, grid_1d
from crfrnn_np.layers.crf_cuda import softmax_column

#: kernel -> the step layers it replaces (the module's table).
REPLACES = {
    "_products_kernel": ("Compatibility", "Compatibility", "Compatibility"),
    "layers.crf_cuda.softmax": ("Softmax",),
    "CudaLattice.filter_device": ("PermutohedralFilter", "PermutohedralFilter"),
    "_logits_softmax_kernel": ("PermutohedralFilter", "PermutohedralFilter", "Compatibility", "Compatibility",
                               "Eltwise", "Compatibility", "UnaryAdd", "Softmax"),
    "_backward_pixel_kernel": ("Softmax", "Split", "UnaryAdd", "Compatibility", "Compatibility", "Eltwise",
                               "Compatibility", "PermutohedralFilter", "PermutohedralFilter"),
    "_weight_partial_kernel": ("Compatibility", "Compatibility"),
    "_sum_blocks_kernel + _parameter_diff_kernel": ("Compatibility", "Compatibility", "Compatibility"),
}


# ---- kernels ---------------------------------------------------------------------------------------------------
# Batch arrays are (N, C, H*W) C-contiguous device views of the blobs; thread t = n*(H*W) + i handles pixel i
# of image n. ``zero`` (of the values' type) starts sums, as in layers/crf_cuda.py.

@gpu_kernel(lambda f: [(f[:, ::1], f[:, ::1], f[:, ::1], f, f[:, :, ::1])])
def _products_kernel(w_s, w_b, mu, zero, a):
    """Thread t = (x*C + j)*C + k: ``a[x, j, k] = Σ_m μ[j, m] W_x[m, k]`` (x = 0: W_s, 1: W_b); a (2, C, C)."""
    t = cuda.grid(1)
    c = mu.shape[0]
    if t >= 2 * c * c:
        return
    k = t % c
    j = (t // c) % c
    x = t // (c * c)
    acc = zero
    for m in range(c):
        acc += mu[j, m] * (w_s[m, k] if x == 0 else w_b[m, k])
    a[x, j, k] = acc


@gpu_kernel(lambda f: [(f[:, :, ::1], f[:, :, ::1], f[:, :, ::1], f[::1], f[:, ::1], f[:, :, ::1], I64,
                        f[:, :, ::1])])
def _logits_softmax_kernel(unary, spatial, bilateral, norm_s, norm_b, a, last, out):
    """Thread t = n*P + i: ``L[k] = U[n, k, i] − Σ_j (A_s[k, j] n_s[i] S[n, j, i] + A_b[k, j] n_b[n, i] B[n, j, i])``
    for every class k (S = K_s P_t, B = K_b P_t unnormalised); ``out[n, :, i] = L`` when ``last``, else
    ``softmax(L)`` (the Softmax layer's max-subtracted form). ``out`` must not be any input."""
    t = cuda.grid(1)
    images, c, pixels = unary.shape
    if t >= images * pixels:
        return
    n = t // pixels
    i = t - n * pixels
    ns = norm_s[i]
    nb = norm_b[n, i]
    for k in range(c):
        acc = unary[n, k, i]
        for j in range(c):
            acc -= a[0, k, j] * (spatial[n, j, i] * ns) + a[1, k, j] * (bilateral[n, j, i] * nb)
        out[n, k, i] = acc
    if not last:
        softmax_column(out, out, n, i)          # the Softmax step's own arithmetic, in place


@gpu_kernel(lambda f: [(I64, f[:, :, ::1], f[:, :, ::1], f[:, :, ::1], f[:, :, ::1], f[::1], f[:, ::1],
                        f[:, :, ::1], I64, f[:, :, ::1], I64, f[:, :, ::1], f[:, :, ::1], f[:, :, ::1])])
def _backward_pixel_kernel(from_softmax, prob, rev_s, rev_b, grad_in, norm_s, norm_b, a, unary_mode, unary_diff,
                           want_e, grad_out, e_s, e_b):
    """Thread t = n*P + i, at pixel (n, i):

    1. the gradient g: when ``from_softmax``, ``∂P = rev_s + rev_b`` (the reverse filters' results) and
       ``grad_out = (∂P − ⟨∂P, P⟩) P`` (the Softmax layer's backward), g = grad_out; else g = ``grad_in``;
    2. ``unary_mode`` 1: ``unary_diff = g``; 2: ``unary_diff += g``; 0: nothing;
    3. when ``want_e``: ``e_x[n, j, i] = −n_x Σ_k A_x[k, j] g[k]`` (the splat input of the reverse filters).

    ``prob`` gives the shape in every mode; the arrays a mode does not read or write may be any array of
    the type (they are not touched); ``e_x`` may be ``rev_x`` (each thread reads its pixel of rev_x before
    writing that pixel of e_x)."""
    t = cuda.grid(1)
    images, c, pixels = prob.shape
    if t >= images * pixels:
        return
    n = t // pixels
    i = t - n * pixels
    if from_softmax:
        dot = (rev_s[n, 0, i] + rev_b[n, 0, i]) * prob[n, 0, i]
        for k in range(1, c):
            dot += (rev_s[n, k, i] + rev_b[n, k, i]) * prob[n, k, i]
        for k in range(c):
            grad_out[n, k, i] = ((rev_s[n, k, i] + rev_b[n, k, i]) - dot) * prob[n, k, i]
    grad = grad_out if from_softmax else grad_in
    if unary_mode == 1:
        for k in range(c):
            unary_diff[n, k, i] = grad[n, k, i]
    elif unary_mode == 2:
        for k in range(c):
            unary_diff[n, k, i] += grad[n, k, i]
    if not want_e:
        return
    ns = norm_s[i]
    nb = norm_b[n, i]
    for j in range(c):
        acc_s = a[0, 0, j] * grad[n, 0, i]
        acc_b = a[1, 0, j] * grad[n, 0, i]
        for k in range(1, c):
            acc_s += a[0, k, j] * grad[n, k, i]
            acc_b += a[1, k, j] * grad[n, k, i]
        e_s[n, j, i] = -(acc_s * ns)
        e_b[n, j, i] = -(acc_b * nb)


@gpu_kernel(lambda f: [(f[:, :, ::1], f[:, :, ::1], f[:, :, ::1], f[::1], f[:, ::1], I64, I64, f,
                        f[:, :, :, ::1])])
def _weight_partial_kernel(grad, spatial, bilateral, norm_s, norm_b, block, accumulate, zero, partial):
    """Thread t = ((b*2 + x)*C + j)*C + k: ``partial[b, x, j, k] (+)= −Σ_p g[j, p] n_x[p] X[k, p]`` over the
    pixels p = n*P + i of block b (``block`` pixels of the whole batch; X = S or B, unnormalised): this
    iteration's ``∂A_x``, one partial sum per block, added to the previous iterations' when ``accumulate``."""
    t = cuda.grid(1)
    blocks, _, c, _ = partial.shape
    if t >= blocks * 2 * c * c:
        return
    k = t % c
    j = (t // c) % c
    x = (t // (c * c)) % 2
    b = t // (2 * c * c)
    images, _, pixels = grad.shape
    lo = b * block
    hi = min(images * pixels, lo + block)
    acc = zero
    for p in range(lo, hi):
        n = p // pixels
        i = p - n * pixels
        if x == 0:
            acc += grad[n, j, i] * (spatial[n, k, i] * norm_s[i])
        else:
            acc += grad[n, j, i] * (bilateral[n, k, i] * norm_b[n, i])
    if accumulate:
        partial[b, x, j, k] -= acc
    else:
        partial[b, x, j, k] = -acc


@gpu_kernel(lambda f: [(f[:, :, :, ::1],)])
def _sum_blocks_kernel(partial):
    """Thread t = (x*C + j)*C + k: ``partial[0, x, j, k] = Σ_b partial[b, x, j, k]``, blocks in order."""
    t = cuda.grid(1)
    blocks, _, c, _ = partial.shape
    if t >= 2 * c * c:
        return
    k = t % c
    j = (t // c) % c
    x = t // (c * c)
    acc = partial[0, x, j, k]
    for b in range(1, blocks):
        acc += partial[b, x, j, k]
    partial[0, x, j, k] = acc


@gpu_kernel(lambda f: [(f[:, :, :, ::1], f[:, ::1], f[:, ::1], f[:, ::1], f, I64, f[:, ::1], f[:, ::1],
                        f[:, ::1])])
def _parameter_diff_kernel(partial, w_s, w_b, mu, zero, wanted, diff_w_s, diff_w_b, diff_mu):
    """Thread t = (r*C + j)*C + k, with ∂A_x = ``partial[0, x]``: r = 0, 1: ``∂W_x[j, k] += Σ_m μ[m, j]
    ∂A_x[m, k]``; r = 2: ``∂μ[j, k] += Σ_m (∂A_s[j, m] W_s[k, m] + ∂A_b[j, m] W_b[k, m])``; only where bit r
    of ``wanted`` is set (the parameters' propagate-down flags)."""
    t = cuda.grid(1)
    c = mu.shape[0]
    if t >= 3 * c * c:
        return
    k = t % c
    j = (t // c) % c
    r = t // (c * c)
    if not (wanted >> r) & 1:
        return
    acc = zero
    if r == 2:
        for m in range(c):
            acc += partial[0, 0, j, m] * w_s[k, m] + partial[0, 1, j, m] * w_b[k, m]
        diff_mu[j, k] += acc
        return
    for m in range(c):
        acc += mu[m, j] * partial[0, r, m, k]
    if r == 0:
        diff_w_s[j, k] += acc
    else:
        diff_w_b[j, k] += acc


# ---- the lattices --------------------------------------------------------------------------------------------

def device_lattices(layer, image):
    """The built device lattices of a batch from the layer's lattice cache, as the PermutohedralFilter layers
    look them up (:meth:`PermutohedralFilterLayer.lattices`): ``(spatial, [bilateral per image])``, each
    ``(CudaLattice, norm)`` with the norm ``1 / (K 1 + eps)`` a (H*W,) device array of the layer's dtype.

    The one call site of the cache in this engine: the bilateral lattices are built on the device from the
    image's device copy (:meth:`LatticeCache.bilateral_batch_device`), nothing crosses."""
    mp = layer.layer_param.multi_stage_meanfield_param
    n, _, h, w = image.shape
    layer.cache.reserve(n)
    spatial = layer.cache.spatial(h, w, float(mp.theta_gamma), layer.dtype)
    bilateral = layer.cache.bilateral_batch_device(image, float(mp.theta_alpha), float(mp.theta_beta),
                                                   layer.dtype)
    return (spatial[0]._impl, spatial[1]), [(lattice._impl, norm) for lattice, norm in bilateral]


# ---- the engine ----------------------------------------------------------------------------------------------

class FusedCudaEngine:
    """MultiStageMeanfield's ``FUSED`` engine on the ``cuda`` backend (module docstring).

    Parameters
    ----------
    layer : MultiStageMeanfieldLayer
        Supplies the parameter blobs (read and accumulated on the device), T, the bandwidths, the phase and
        the lattice cache (``"cuda"`` lattices).

    Attributes
    ----------
    kept : bool
        Whether the last forward kept every iteration's P_t, K_s P_t and K_b P_t for a backward.
    """

    def __init__(self, layer):
        self.layer = layer
        self.kept = False
        self._buffers = {}
        self._shape = None
        self._norms = (None, [])

    def reshape(self, bottom):
        """A new shape drops the buffers (made again, lazily, by the next forward) after checking that they
        fit in the device's memory; the spatial lattice is built here. Nothing is kept for a backward."""
        from crfrnn_np.backend import check_device_memory
        unary = bottom[0]
        self.kept = False
        if unary.shape == self._shape:
            return
        self._shape = unary.shape
        self._buffers = {}
        self._norms = (None, [])
        n, c, h, w = unary.shape
        layer = self.layer
        # at most this many (N, C, H*W) planes: P_t, K_s P_t, K_b P_t per iteration (one set when nothing is
        # kept), and for a backward its g, E_s, E_b, K_sᵀ E_s, K_bᵀ E_b and the top of a rerun forward
        planes = 3 * layer.num_iterations + 6
        check_device_memory(planes * n * c * h * w * np.dtype(layer.dtype).itemsize,
                            "layer '%s' (MultiStageMeanfield, engine FUSED): %d buffers of %d x %d x %d x %d"
                            % (layer.name, planes, n, c, h, w))
        if n and h * w:
            # built here, once per image size, so that a forward moves nothing for it (as the filter layer does)
            mp = self.layer.layer_param.multi_stage_meanfield_param
            self.layer.cache.spatial(h, w, float(mp.theta_gamma), self.layer.dtype)

    def _buffer(self, key, shape=None):
        """A device array made once per reshape under ``key`` ((N, C, H*W) unless ``shape`` is given)."""
        buf = self._buffers.get(key)
        if buf is None:
            n, c, h, w = self._shape
            buf = self._buffers[key] = cuda.device_array(shape or (n, c, h * w), self.layer.dtype)
        return buf

    def _batch_norm(self, bilateral):
        """The bilateral norms of the batch stacked as one (N, H*W) device array (copied on the device, and only
        when the lattices changed since the last forward)."""
        from crfrnn_np import cuda_ops
        n, _, h, w = self._shape
        stacked = self._buffer("norm_b", (n, h * w))
        norms = [norm for _, norm in bilateral]
        if [id(x) for x in norms] != [id(x) for x in self._norms[1]]:
            for i, norm in enumerate(norms):
                cuda_ops.copy(norm, stacked[i])
            self._norms = (stacked, norms)          # holding the norms keeps their ids unique
        return stacked

    def _views(self, blob_array):
        n, c, h, w = self._shape
        return blob_array.reshape(n, c, h * w)

    def _parameters(self):
        """W_s, W_b, μ as (C, C) device arrays."""
        c = self._shape[1]
        return [blob.gpu_data().reshape(c, c) for blob in self.layer.blobs]

    def forward(self, bottom, top, keep, out=None):
        """L_T into ``top[0]`` (or into the (N, C, H*W) device array ``out``); with ``keep`` every iteration's
        P_t, K_s P_t and K_b P_t stay in this engine's buffers for the backward."""
        from crfrnn_np.layers import crf_cuda
        layer = self.layer
        unary, q0, data = bottom
        n, c, h, w = unary.shape
        pixels = h * w
        (lat_s, norm_s), bilateral = device_lattices(layer, data)
        norm_b = self._batch_norm(bilateral)
        zero = np.dtype(layer.dtype).type(0)
        a = self._buffer("products", (2, c, c))
        w_s, w_b, mu = self._parameters()
        _products_kernel[grid_1d(2 * c * c)](w_s, w_b, mu, zero, a)
        unary_d = self._views(unary.gpu_data())
        prob = self._buffer(("prob", 1))
        crf_cuda.softmax(q0.gpu_data(), prob, n, c, pixels)                                  # P_1
        iterations = layer.num_iterations
        if out is None:
            out = self._views(top[0].mutable_gpu_data())
        grid = grid_1d(n * pixels)
        for t in range(1, iterations + 1):
            spatial = self._buffer(("spatial", t if keep else 1))
            bilateral_out = self._buffer(("bilateral", t if keep else 1))
            for i in range(n):
                lat_s.filter_device(prob[i], False, None, spatial[i])                        # K_s P_t
                bilateral[i][0].filter_device(prob[i], False, None, bilateral_out[i])       # K_b P_t
            last = t == iterations
            following = out if last else self._buffer(("prob", t + 1 if keep else 1))
            _logits_softmax_kernel[grid](unary_d, spatial, bilateral_out, norm_s, norm_b, a, 1 if last else 0,
                                         following)
            prob = following
        self._lattices = (lat_s, norm_s, bilateral) if keep else None
        self.kept = keep

    def backward(self, top, propagate_down, bottom):
        """∂U and ∂Q0 overwritten where asked for, the three parameter diffs accumulated (a forward that kept
        nothing is run again first, keeping); all on the device."""
        layer = self.layer
        if not self.kept:
            self.forward(bottom, top, True, out=self._buffer("top"))          # L_T again, unused
        unary, q0, _ = bottom
        n, c, h, w = unary.shape
        pixels = h * w
        want_unary, want_q0 = bool(propagate_down[0]), bool(propagate_down[1])
        wanted = sum(1 << r for r, flag in enumerate(layer.param_propagate_down[:3]) if flag)
        if not (want_unary or want_q0 or wanted):
            return
        lat_s, norm_s, bilateral = self._lattices
        norm_b = self._norms[0]
        a = self._buffer("products", (2, c, c))
        zero = np.dtype(layer.dtype).type(0)
        # ∂A_x is summed by blocks of pixels (the CPU Compatibility weight gradient's blocking), one partial
        # (2, C, C) sum per block, added over the iterations and summed in block order at the end
        blocks = -(-n * pixels // WEIGHT_DIFF_BLOCK)
        partial = self._buffer("partial", (blocks, 2, c, c))
        grad = self._buffer("grad")
        e_s, e_b = self._buffer("e_s"), self._buffer("e_b")
        rev_s, rev_b = self._buffer("rev_s"), self._buffer("rev_b")
        unary_diff = self._views(unary.mutable_gpu_diff()) if want_unary else grad
        q0_diff = self._views(q0.mutable_gpu_diff()) if want_q0 else grad
        grid = grid_1d(n * pixels)
        top_diff = self._views(top[0].gpu_diff())
        # g_T = ∂L_T: ∂U = g_T, and the reverse filters' inputs E_x of iteration T (``grad``: the shape only)
        _backward_pixel_kernel[grid](0, grad, rev_s, rev_b, top_diff, norm_s, norm_b, a, 1 if want_unary else 0,
                                     unary_diff, 1, grad, e_s, e_b)
        g = top_diff
        T = layer.num_iterations
        for t in range(T, 0, -1):
            if wanted:
                _weight_partial_kernel[grid_1d(blocks * 2 * c * c)](
                    g, self._buffer(("spatial", t)), self._buffer(("bilateral", t)), norm_s, norm_b,
                    WEIGHT_DIFF_BLOCK, 1 if t < T else 0, zero, partial)
            if t == 1 and not want_q0:
                break
            for i in range(n):
                lat_s.filter_device(e_s[i], True, None, rev_s[i])                            # K_sᵀ E_s
                bilateral[i][0].filter_device(e_b[i], True, None, rev_b[i])                 # K_bᵀ E_b
            # g_{t-1} (into ∂Q0 when t = 1), added to ∂U for t - 1 >= 1, and the next E_x when they are needed
            more = t > 2 or (t == 2 and want_q0)
            _backward_pixel_kernel[grid](1, self._buffer(("prob", t)), rev_s, rev_b, grad, norm_s, norm_b, a,
                                         2 if want_unary and t > 1 else 0, unary_diff, 1 if more else 0,
                                         grad if t > 1 else q0_diff, e_s, e_b)
            g = grad
        if wanted:
            _sum_blocks_kernel[grid_1d(2 * c * c)](partial)
            w_s, w_b, mu = self._parameters()
            diffs = [blob.mutable_gpu_diff().reshape(c, c) if (wanted >> r) & 1 else partial[0, 0]
                     for r, blob in enumerate(layer.blobs[:3])]
            _parameter_diff_kernel[grid_1d(3 * c * c)](partial, w_s, w_b, mu, zero, wanted, *diffs)
        if not layer.keep_iterations:
            self.kept = False
            self._lattices = None
