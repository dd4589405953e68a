r"""The FUSED engine of MultiStageMeanfield: the mean field's forward and backward in fused CPU kernels.

This is the fast path, fenced off from the layers. The definition is the step-layer sub-net that the
STEPS engine runs and ``crfrnn unroll`` prints (:mod:`crfrnn_np.layers.multi_stage_meanfield`); every
kernel here rearranges some of those steps, and the table says which. Each kernel is tested on its own
against the steps it replaces (``tests/fused/test_meanfield.py``), and the whole engine against STEPS
(``tests/layers/test_multi_stage_meanfield.py``).

=============================  ======================================================================
kernel                         replaces (per iteration t; P_t = Q_{t-1}, x ∈ {spatial, bilateral})
=============================  ======================================================================
``_softmax_planes_to_rows``    Softmax of the first iteration (P_1 = softmax(Q0)), written as (N, C) rows
``lattice.cpu.splat``,         the splat and blur stages of both PermutohedralFilter steps
``lattice.cpu.blur``           (``V_x = B_x Sp_x P_t``, pixel-major rows)
``_vertex_product``            Compatibility (W_x), Eltwise SUM and Compatibility (μ): ``A_x = μ W_x``
                               applied to the blurred vertex rows (skipped when A_x is diagonal)
``_slice_softmax``             both filters' slice and normalisation, the diagonal part of the
                               compatibilities, UnaryAdd (``L_t = U − Φ_t``) and the next Softmax
``_slice_softmax_backward``    backward of Softmax, of both filters' slice and normalisation, and the
                               fan-out sum of UnaryAdd (``∂U = Σ_t ∂L_t``)
``_vertex_outer``              the weight gradient of the three Compatibility steps (``∂A_x``, a C x C
                               reduction over the vertices instead of the pixels)
``_transpose``                 no step: (C, N) planes to (N, C) rows and back
=============================  ======================================================================

:data:`REPLACES` holds this table for the tests.

Notation for one image of N pixels and C classes, per lattice x ∈ {s (spatial), b (bilateral)}: splat
``Sp_x`` (M_x × N, barycentric weights), blur ``B_x = B_d ⋯ B_0``, slice ``Sp_xᵀ`` scaled by α_x, norm
``n_x = 1 / (K_x 𝟙)``. Iteration t of the forward, with L_0 = Q0:

.. math::

    P_t = \mathrm{softmax}(L_{t-1}), \qquad V_{x,t} = B_x\, Sp_x P_t, \qquad
    L_t = U - \sum_x \mathrm{diag}(n_x)\, \alpha_x Sp_x^T (A_x V_{x,t}), \qquad A_s = \mu W_s,\ A_b = \mu W_b

Three rewrites of the step layers, each exact in real arithmetic:

1. **The compatibility products move to the lattice vertices.** ``Φ_t = μ (W_s S_t + W_b B_t)`` with
   ``S_t = diag(n_s) K_s P_t``: a C x C matrix acts on the classes of a pixel, the filter on the pixels
   of a class, so they commute, and the matrix can be applied to the blurred vertex rows ``V`` (A V means
   ``A · V[v]`` for every vertex v). The bilateral lattice of a 500 x 500 photograph has about 100 000
   vertices for 250 000 pixels, and ``μ (W_s S + W_b B)`` becomes two products instead of three.
2. **One pass per pixel after the blurs.** Both slices, the unary, ``L_t = U − Φ_t`` and the next softmax
   run in one loop over pixels (:func:`_slice_softmax`); S_t, B_t, M_t and Φ_t are never written. The
   backward's pixel pass likewise does both slices, the softmax backward and the sum ∂U = Σ_t ∂L_t.
3. **Pixel-major rows.** P_t and the diffs live as (N, C) rows, so the splats read a pixel's classes
   contiguously (``lattice.cpu.splat(..., pixel_major=True)``) and the pixel passes write them so.

Backward of iteration t, given g_t = ∂L_t (∂Φ_t = −g_t):

.. math::

    E_{x} = Sp_x(\mathrm{diag}(-n_x)\, g_t), \quad
    \partial A_x = \alpha_x E_x^T V_{x,t}, \quad
    \partial P_t = \sum_x Sp_x^T B_x^T (\alpha_x A_x^T E_x), \quad
    g_{t-1} = P_t \odot (\partial P_t - \langle \partial P_t, P_t \rangle)

with ``B_xᵀ = B_0 ⋯ B_d`` (the blur axes in reverse order, spec crfasrnn.md §3.6), then ``∂μ += Σ_x ∂A_x
W_xᵀ``, ``∂W_x += μᵀ ∂A_x``, ``∂U = Σ_t g_t`` and ``∂Q0 = g_0``. ``∂A_x`` is a C x C reduction over the
vertices instead of the pixels. The forward keeps, per iteration, P_t (N, C) and the blurred ``V_{x,t}``
((M_x + 1, C) each) for the backward: less than the step layers' seven (C, N) blobs per iteration.
"""
import math

import numba
import numpy as np

from crfrnn_np.blob import Blob
from crfrnn_np.kernel import cpu_kernel
from crfrnn_np.threads import parallel_for
from crfrnn_np.lattice import cpu as lattice_cpu
from crfrnn_np.lattice.cpu import slice_row
from crfrnn_np.config import CPU_BLOCK, SOFTMAX_BLOCK
from crfrnn_np.lattice.reference import slice_factor

#: kernel -> the step layers it replaces (the module's table).
REPLACES = {
    "_softmax_planes_to_rows": ("Softmax",),
    "lattice.cpu.splat + lattice.cpu.blur": ("PermutohedralFilter",),
    "_vertex_product": ("Compatibility", "Eltwise", "Compatibility"),
    "_slice_softmax": ("PermutohedralFilter", "PermutohedralFilter", "Compatibility", "UnaryAdd", "Softmax"),
    "_slice_softmax_backward": ("Softmax", "PermutohedralFilter", "PermutohedralFilter", "UnaryAdd"),
    "_vertex_outer": ("Compatibility",),
    "_transpose": (),
}



# ---- per-pixel and per-vertex kernels ------------------------------------------------------------------------

# exp(x) = 2^n exp(r), n = round(x / ln 2), r = x − n ln 2 (ln 2 split in a high part exact in float32 and
# a low part, Cody and Waite), exp(r) on |r| <= ln(2)/2 by Cephes' degree-6 expf polynomial: at most 1 ulp
# from the correctly rounded value on [−87, 0]. Written as plain float arithmetic so that LLVM vectorises it
# (numba's math.exp is a scalar libm call, 2-3 times slower per element).
_LOG2E = np.float32(1.4426950408889634)
_LN2_HIGH = np.float32(0.693359375)
_LN2_LOW = np.float32(-2.12194440e-4)
_EXP_POLY = (np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3),
             np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1))


@numba.njit(cache=True)
def _exp_nonpositive(x, count, bits):
    """``x[:count] = exp(x[:count])`` in place for values <= 0 (softmax arguments ``l − max l``); float32
    through the vectorisable polynomial above, float64 through ``math.exp``. ``bits`` is int32 scratch of
    at least ``count``.

    In float32, arguments below −87 give exactly 0 instead of a result under 2^−126: denormal marginals
    would make every later splat, blur and slice that touches them many times slower (a net with
    confident, large logits has them at most pixels), and they are below any probability that matters."""
    if x.itemsize == 4:
        scale = bits.view(np.float32)
        p0, p1, p2, p3, p4, p5 = _EXP_POLY
        for j in range(count):
            v = max(x[j], np.float32(-87.0))
            n = np.rint(v * _LOG2E)
            r = (v - n * _LN2_HIGH) - n * _LN2_LOW
            p = ((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5
            # 2^n as float32 bits; +0.0 (all bits clear) below the cut
            power = (np.int32(n) + np.int32(127)) << np.int32(23)
            bits[j] = power if x[j] >= np.float32(-87.0) else np.int32(0)
            x[j] = (p * r) * r + r + np.float32(1.0)
        for j in range(count):
            x[j] = x[j] * scale[j]
    else:
        for j in range(count):
            x[j] = math.exp(x[j])


#: fastmath flags of the softmax's sums and maxima: reassociation lets LLVM split their dependency chains
#: across vector lanes (a different summation order, as any vectorised softmax; no NaN/inf assumptions).
#: Only on leaf functions: numba merges a caller's fastmath flags into the functions it calls (and caches that
#: build under the callee's own signature), so flags on a caller would reach :func:`_exp_nonpositive` too
#: (measured: they did, and broke its results). On these two leaves the softmax pass is 30% faster.
_REDUCE = {"reassoc", "nsz", "arcp", "contract"}


@numba.njit(cache=True, fastmath=_REDUCE)
def _shift_by_max(logits, count, c):
    """``l −= max(l)`` in place for each of the ``count`` pixels' C logits in flat ``logits``."""
    for j in range(count):
        base = j * c
        top = logits[base]
        for k in range(1, c):
            top = max(top, logits[base + k])
        for k in range(c):
            logits[base + k] -= top


@numba.njit(cache=True, fastmath=_REDUCE)
def _normalise(logits, count, c, rows, first):
    """``rows[first + j] = e / Σ e`` for the C exponentials ``e`` of each of the ``count`` pixels."""
    for j in range(count):
        base = j * c
        total = logits.dtype.type(0)
        for k in range(c):
            total += logits[base + k]
        for k in range(c):
            rows[first + j, k] = logits[base + k] / total


@numba.njit(cache=True)
def _softmax_block(logits, count, c, bits, rows, first):
    """``rows[first + j] = softmax(logits[j*c : (j+1)*c])`` for the ``count`` pixels of a block of flat
    logits (the Softmax layer's max-subtracted form). One call per block: the helpers carry fastmath
    flags and were not inlined into their flag-less callers; called once per pixel, they made the pixel
    pass of :func:`_slice_softmax` a third slower (45 against 33 ms single-threaded at 500 x 500 x 21)."""
    _shift_by_max(logits, count, c)
    _exp_nonpositive(logits, count * c, bits)
    _normalise(logits, count, c, rows, first)


@cpu_kernel
def _transpose(src, dst, b0, b1):
    """``dst = srcᵀ`` for 2-D arrays, (C, N) planes to (N, C) rows or back, by blocks of ``SOFTMAX_BLOCK``
    pixels (blocks ``b0..b1-1``): every inner loop runs along one plane (contiguous), and the block's
    rows stay in the L1 cache."""
    planar = src.shape[1] >= src.shape[0]
    n = src.shape[1] if planar else src.shape[0]
    c = src.shape[0] if planar else src.shape[1]
    for b in range(b0, b1):
        lo = b * SOFTMAX_BLOCK
        hi = min(n, lo + SOFTMAX_BLOCK)
        for k in range(c):
            if planar:
                for i in range(lo, hi):
                    dst[i, k] = src[k, i]
            else:
                for i in range(lo, hi):
                    dst[k, i] = src[i, k]


@cpu_kernel
def _softmax_planes_to_rows(planes, rows, b0, b1):
    """``rows[i] = softmax(planes[:, i])`` for the pixel blocks ``b0..b1-1`` of (C, N) planes, into (N, C) rows:
    the first iteration's Softmax and the change of layout in one pass."""
    c, n = planes.shape
    logits = np.empty(SOFTMAX_BLOCK * c, rows.dtype)
    bits = np.empty(SOFTMAX_BLOCK * c, np.int32)
    for b in range(b0, b1):
        lo = b * SOFTMAX_BLOCK
        count = min(n, lo + SOFTMAX_BLOCK) - lo
        for k in range(c):                      # plane by plane: contiguous reads
            for j in range(count):
                logits[j * c + k] = planes[k, lo + j]
        _softmax_block(logits, count, c, bits, rows, lo)


def _over_blocks(kernel, items, block, *args):
    """``kernel(*args, b0, b1)`` over the ``ceil(items / block)`` blocks, on the kernels' threads (a thread
    gets at least 8192 items' worth of blocks)."""
    parallel_for(kernel, (items + block - 1) // block, *args, grain=max(1, 8192 // block))


def transpose(src, dst):
    """``dst = srcᵀ``, (C, N) planes to (N, C) rows or back (:func:`_transpose`)."""
    _over_blocks(_transpose, max(src.shape), SOFTMAX_BLOCK, src, dst)


def _planes_to_rows(planes, dtype):
    """(C, N) planes as a new C-contiguous (N, C) array of ``dtype``."""
    rows = np.empty(planes.shape[::-1], dtype)
    transpose(np.ascontiguousarray(planes, dtype), rows)
    return rows


@cpu_kernel
def _vertex_product(weight_t, buf, out, b0, b1):
    """``out[v] = weight · buf[v]`` for every row of (M+1, C) buffers; ``weight_t`` is weightᵀ (C, C), so
    the inner loop runs over contiguous output classes. The zero row 0 stays zero."""
    rows, c = buf.shape
    acc = np.empty(c, out.dtype)
    for b in range(b0, b1):
        for v in range(b * CPU_BLOCK, min(rows, (b + 1) * CPU_BLOCK)):
            for p in range(c):
                acc[p] = 0
            for q in range(c):
                x = buf[v, q]
                for p in range(c):
                    acc[p] += weight_t[q, p] * x
            for p in range(c):
                out[v, p] = acc[p]


@cpu_kernel
def _vertex_outer(left, right, partial, b0, b1):
    """``partial[b] = Σ_{v in block b} left[v] right[v]ᵀ`` over the rows of two (M+1, C) buffers, one
    (C, C) partial sum per block of ``CPU_BLOCK`` rows (summed by the caller, in block order)."""
    rows, c = left.shape
    for b in range(b0, b1):
        acc = np.zeros((c, c), partial.dtype)      # local: neighbouring partials share cache lines
        for v in range(b * CPU_BLOCK, min(rows, (b + 1) * CPU_BLOCK)):
            for p in range(c):
                x = left[v, p]
                for q in range(c):
                    acc[p, q] += x * right[v, q]
        partial[b] = acc


@cpu_kernel
def _slice_softmax(unary, buf_s, vertex_s, weights_s, alpha_s, norm_s, buf_b, vertex_b, weights_b, alpha_b,
                   norm_b, class_s, class_b, prob, logits_out, b0, b1):
    """``L = U − n_s α_s class_s ⊙ Sp_sᵀ buf_s − n_b α_b class_b ⊙ Sp_bᵀ buf_b`` per pixel (``class_x`` (C,)
    per-class factors: a diagonal A_x, or ones), then ``prob[i] = softmax(L)`` (N, C); or, when
    ``logits_out`` (C, N) is not empty (the last iteration), ``logits_out[:, i] = L``."""
    n, c = unary.shape
    last = logits_out.shape[0] > 0
    acc_s = np.empty(c, unary.dtype)
    acc_b = np.empty(c, unary.dtype)
    logits = np.empty(SOFTMAX_BLOCK * c, unary.dtype)
    bits = np.empty(0 if last else SOFTMAX_BLOCK * c, np.int32)
    for b in range(b0, b1):
        lo = b * SOFTMAX_BLOCK
        count = min(n, lo + SOFTMAX_BLOCK) - lo
        for j in range(count):
            i = lo + j
            slice_row(buf_s, vertex_s, weights_s, alpha_s, i, acc_s)
            slice_row(buf_b, vertex_b, weights_b, alpha_b, i, acc_b)
            ns = norm_s[i]
            nb = norm_b[i]
            for k in range(c):
                acc_s[k] = unary[i, k] - (acc_s[k] * ns * class_s[k] + acc_b[k] * nb * class_b[k])
            for k in range(c):
                logits[j * c + k] = acc_s[k]
        if last:
            for k in range(c):                  # plane by plane: contiguous writes
                for j in range(count):
                    logits_out[k, lo + j] = logits[j * c + k]
        else:
            _softmax_block(logits, count, c, bits, prob, lo)


@cpu_kernel
def _slice_softmax_backward(buf_s, vertex_s, weights_s, buf_b, vertex_b, weights_b, class_s, class_b, prob, grad,
                            unary_grad, b0, b1):
    """``∂P = class_s ⊙ Sp_sᵀ buf_s + class_b ⊙ Sp_bᵀ buf_b`` per pixel (α and a full A_xᵀ already in the
    buffers; ``class_x`` (C,) the diagonal of a diagonal α A_x, else ones), then
    ``grad[i] = P_i ⊙ (∂P − ⟨∂P, P_i⟩)`` (N, C) and, when ``unary_grad`` (N, C) is not empty,
    ``unary_grad[i] += grad[i]``."""
    n, c = prob.shape
    one = prob.dtype.type(1)
    add = unary_grad.shape[0] > 0
    acc_s = np.empty(c, prob.dtype)
    acc_b = np.empty(c, prob.dtype)
    for b in range(b0, b1):
        for i in range(b * CPU_BLOCK, min(n, (b + 1) * CPU_BLOCK)):
            slice_row(buf_s, vertex_s, weights_s, one, i, acc_s)
            slice_row(buf_b, vertex_b, weights_b, one, i, acc_b)
            dot = prob.dtype.type(0)
            for k in range(c):
                acc_s[k] = acc_s[k] * class_s[k] + acc_b[k] * class_b[k]
                dot += acc_s[k] * prob[i, k]
            for k in range(c):
                g = prob[i, k] * (acc_s[k] - dot)
                grad[i, k] = g
                if add:
                    unary_grad[i, k] += g


# ---- one image -----------------------------------------------------------------------------------------------

class _Lattice:
    """One built CPU lattice with its norm and slice factor, and two (M+1, C) work buffers."""

    def __init__(self, entry, c, dtype):
        lattice, norm = entry
        self.arrays = lattice.arrays
        self.vertex = self.arrays["vertex"]
        self.weights = self.arrays["weights"]
        self.norm = np.ascontiguousarray(norm, dtype)
        self.alpha = dtype.type(slice_factor(self.vertex.shape[1] - 1))
        self.shape = (self.arrays["num_vertices"] + 1, c)
        self.dtype = dtype
        self.work = None

    def buffers(self, fresh):
        """Two (M+1, C) buffers: new ones when ``fresh``, else this lattice's (reused) work pair."""
        if fresh:
            return np.empty(self.shape, self.dtype), np.empty(self.shape, self.dtype)
        if self.work is None:
            self.work = self.buffers(True)
        return self.work

    def splat(self, rows, out, scale=None):
        """``Sp (diag(scale) rows)`` of (N, C) rows into the (M+1, C) ``out``."""
        return lattice_cpu.splat(rows, self.arrays, scale, pixel_major=True, out=out)

    def blur(self, pair, reverse=False):
        """Blur ``pair[0]`` (``Bᵀ`` when ``reverse``) using ``pair[1]`` as scratch; returns ``(result,
        other)``, the buffer holding the result and the one left free."""
        result = lattice_cpu.blur(pair[0], self.arrays, reverse, scratch=pair[1])
        return (result, pair[1]) if result is pair[0] else (result, pair[0])

    def product(self, matrix, buf, out):
        """``out[v] = matrix · buf[v]`` for every vertex row ((C, C) float64 matrix)."""
        _over_blocks(_vertex_product, buf.shape[0], CPU_BLOCK, np.ascontiguousarray(matrix.T, self.dtype), buf,
                     out)
        return out

    def outer(self, left, right):
        """``Σ_v left[v] right[v]ᵀ`` (C, C) in float64, the blocks' partial sums added in order."""
        blocks = (self.shape[0] + CPU_BLOCK - 1) // CPU_BLOCK
        partial = np.empty((blocks, self.shape[1], self.shape[1]), self.dtype)
        parallel_for(_vertex_outer, blocks, left, right, partial)
        return partial.astype(np.float64).sum(axis=0)


def _matrices(weights):
    """W_s, W_b, μ as float64 (C, C) arrays, and A_s = μ W_s, A_b = μ W_b."""
    w_s, w_b, mu = (np.asarray(w, np.float64) for w in weights)
    return (w_s, w_b, mu), (mu @ w_s, mu @ w_b)


def _compatibility(matrices, dtype):
    """Per lattice, ``(matrix, factors)``: the (C, C) matrix of the vertex product and the (C,) per-class
    factors of the pixel pass. A diagonal matrix (the Potts model: the initial W_s = w_s·I, W_b = w_b·I,
    μ = −I) needs no product, since the diagonal commutes with the lattice filter: ``(None, its diagonal)``;
    a full one gives ``(matrix, ones)``."""
    plans = []
    for a in matrices:
        diagonal = np.diagonal(a)
        if np.array_equal(a, np.diag(diagonal)):
            plans.append((None, np.ascontiguousarray(diagonal, dtype)))
        else:
            plans.append((a, np.ones(a.shape[0], dtype)))
    return plans


def forward_image(unary, q0, spatial, bilateral, weights, iterations, out, keep=False):
    """T mean-field iterations for one image, writing the last logits L_T.

    Parameters
    ----------
    unary, q0 : ndarray, (C, H*W)
        U and the initial logits.
    spatial, bilateral : tuple (PermutohedralLattice, ndarray (H*W,))
        Built ``"cpu"`` lattices and their normalisation factors ``1 / (K 1)``.
    weights : sequence of 3 ndarray, (C, C)
        W_s, W_b, μ.
    iterations : int
        T.
    out : ndarray, (C, H*W), C-contiguous, float32 or float64
        Receives L_T (must not overlap the inputs); its dtype is the computation's.
    keep : bool
        Keep what :func:`backward_image` needs.

    Returns
    -------
    dict or None
        The stored forward when ``keep``: the lattices, P_t (N, C) and the blurred V_{x,t} per iteration.
    """
    c, n = unary.shape
    dtype = out.dtype
    lattices = [_Lattice(spatial, c, dtype), _Lattice(bilateral, c, dtype)]
    _, products = _matrices(weights)
    plans = _compatibility(products, dtype)
    unary_rows = _planes_to_rows(unary, dtype)
    prob = np.empty((n, c), dtype)
    _over_blocks(_softmax_planes_to_rows, n, SOFTMAX_BLOCK, np.ascontiguousarray(q0, dtype), prob)     # P_1
    probs, blurred = [], []
    none = np.empty((0, 0), dtype)
    lat_s, lat_b = lattices
    for t in range(iterations):
        vertices, messages = [], []
        for lat, (a, _) in zip(lattices, plans):
            pair = lat.buffers(keep)
            lat.splat(prob, pair[0])
            v, free = lat.blur(pair)
            vertices.append(v)
            messages.append(v if a is None else lat.product(a, v, free))      # A_x V_{x,t}
        last = t == iterations - 1
        following = none if last else np.empty((n, c), dtype) if keep else prob
        _over_blocks(_slice_softmax, n, SOFTMAX_BLOCK, unary_rows, messages[0], lat_s.vertex, lat_s.weights,
                     lat_s.alpha, lat_s.norm, messages[1], lat_b.vertex, lat_b.weights, lat_b.alpha, lat_b.norm,
                     plans[0][1], plans[1][1], following, out if last else none)
        if keep:
            probs.append(prob)
            blurred.append(vertices)
            prob = following
    if not keep:
        return None
    return {"lattices": lattices, "probs": probs, "blurred": blurred}


def backward_image(stored, weights, top_diff, unary_diff=None, q0_diff=None, param_diffs=(None, None, None)):
    """Backpropagation through the T iterations of one image's stored forward (module docstring).

    Parameters
    ----------
    stored : dict
        From :func:`forward_image` with ``keep=True``.
    weights : sequence of 3 ndarray, (C, C)
        W_s, W_b, μ, as in the forward.
    top_diff : ndarray, (C, H*W)
        ∂L_T.
    unary_diff, q0_diff : ndarray, (C, H*W), optional
        Overwritten with ∂U and ∂Q0 when given.
    param_diffs : sequence of 3 ((C, C) ndarray or None)
        ∂W_s, ∂W_b, ∂μ are **added** to those given (parameter diffs accumulate, as in Caffe).
    """
    lattices, probs, blurred = stored["lattices"], stored["probs"], stored["blurred"]
    (w_s, w_b, mu), products = _matrices(weights)
    n, c = probs[0].shape
    dtype = probs[0].dtype
    grad = _planes_to_rows(top_diff, dtype)                       # g_T = ∂L_T, (N, C)
    unary_rows = grad.copy() if unary_diff is not None else np.empty((0, 0), dtype)
    # α_x A_xᵀ: the transpose of the forward's vertex product, with the slice factor folded in
    plans = _compatibility([a.T * float(lat.alpha) for lat, a in zip(lattices, products)], dtype)
    grad_a = [np.zeros((c, c)), np.zeros((c, c))]
    want_params = any(d is not None for d in param_diffs)
    lat_s, lat_b = lattices
    spare = None
    for t in range(len(probs) - 1, -1, -1):
        if t == 0 and q0_diff is None and not want_params:
            break
        rows = []
        for x, lat in enumerate(lattices):
            pair = lat.buffers(False)
            splat = lat.splat(grad, pair[0], -lat.norm)           # E_x = Sp_x(diag(−n_x) g_t)
            if want_params:
                grad_a[x] += float(lat.alpha) * lat.outer(splat, blurred[t][x])
            if plans[x][0] is None:                               # diagonal: scaled in the pixel pass
                rows.append(lat.blur(pair, reverse=True)[0])
            else:
                lat.product(plans[x][0], splat, pair[1])          # α_x A_xᵀ E_x
                rows.append(lat.blur((pair[1], pair[0]), reverse=True)[0])
        if t == 0 and q0_diff is None:
            break
        following = spare if spare is not None else np.empty((n, c), dtype)
        _over_blocks(_slice_softmax_backward, n, CPU_BLOCK, rows[0], lat_s.vertex, lat_s.weights, rows[1],
                     lat_b.vertex, lat_b.weights, plans[0][1], plans[1][1], probs[t], following,
                     unary_rows if t > 0 else np.empty((0, 0), dtype))
        grad, spare = following, grad                             # g_{t-1}; g_t is dead
    if unary_diff is not None:
        transpose(unary_rows, unary_diff)
    if q0_diff is not None:
        transpose(grad, q0_diff)
    for x, w in enumerate((w_s, w_b)):
        if param_diffs[x] is not None:
            param_diffs[x] += mu.T @ grad_a[x]                   # ∂W_x = μᵀ ∂A_x
    if param_diffs[2] is not None:
        param_diffs[2] += grad_a[0] @ w_s.T + grad_a[1] @ w_b.T  # ∂μ = Σ_x ∂A_x W_xᵀ


# ---- the engine ----------------------------------------------------------------------------------------------

class FusedEngine:
    """MultiStageMeanfield's ``FUSED`` engine: :func:`forward_image` and :func:`backward_image` per image.

    Parameters
    ----------
    layer : MultiStageMeanfieldLayer
        Supplies the parameter blobs, T, the bandwidths and the lattice cache (``"cpu"`` lattices).
    """

    def __init__(self, layer):
        self.layer = layer
        self.records = []
        self.kept = False

    def reshape(self, bottom):
        self.records = []
        self.kept = False

    def _lattices(self, bottom):
        """``(spatial entry, [bilateral entry per image])`` from the layer's lattice cache."""
        layer = self.layer
        unary, _, data = bottom
        n, _, h, w = unary.shape
        mp = layer.layer_param.multi_stage_meanfield_param
        layer.cache.reserve(n)
        spatial = layer.cache.spatial(h, w, float(mp.theta_gamma), layer.dtype)
        bilateral = [layer.cache.bilateral(data.data[i], float(mp.theta_alpha), float(mp.theta_beta), layer.dtype)
                     for i in range(n)]
        return spatial, bilateral

    def forward(self, bottom, top, keep):
        """L_T into ``top[0]``; with ``keep`` the per-image records the backward needs are stored."""
        unary, q0, _ = bottom
        n, c, h, w = unary.shape
        spatial, bilateral = self._lattices(bottom)
        weights = [blob.data[0, 0] for blob in self.layer.blobs]
        iterations = self.layer.num_iterations
        self.records = [forward_image(unary.data[i].reshape(c, h * w), q0.data[i].reshape(c, h * w), spatial,
                                      bilateral[i], weights, iterations, top[0].data[i].reshape(c, h * w), keep)
                        for i in range(n)]
        self.kept = keep

    def backward(self, top, propagate_down, bottom):
        """∂U and ∂Q0 overwritten where asked for, the three parameter diffs accumulated (a forward that
        kept nothing is run again first, keeping)."""
        layer = self.layer
        if not self.kept:
            self.forward(bottom, [Blob(top[0].shape, layer.dtype)], True)     # L_T again, unused
        unary, q0, _ = bottom
        n, c, h, w = unary.shape
        weights = [blob.data[0, 0] for blob in layer.blobs]
        params = [blob.diff[0, 0] if flag else None for blob, flag in zip(layer.blobs, layer.param_propagate_down)]
        for i, record in enumerate(self.records):
            backward_image(record, weights, top[0].diff[i].reshape(c, h * w),
                           unary.diff[i].reshape(c, h * w) if propagate_down[0] else None,
                           q0.diff[i].reshape(c, h * w) if propagate_down[1] else None, params)
        if not layer.keep_iterations:
            self.records = []
            self.kept = False
