"""The FUSED engine kernel by kernel, each against the step layers it replaces (``REPLACES``, the table that
opens ``fused/meanfield.py``); the whole engine is held to STEPS in tests/layers/test_multi_stage_meanfield.py.

Each test builds a small image's two lattices, computes the kernel's output, and computes the same thing by
running the step layers themselves (PermutohedralFilter, Compatibility, Eltwise, UnaryAdd, Softmax and their
backwards) on the same data.
"""
import numpy as np
import pytest

from crfrnn_np.fused import meanfield as fused
from crfrnn_np.fused.meanfield import _exp_nonpositive
from crfrnn_np.lattice import cpu as lattice_cpu
from crfrnn_np.layers.permutohedral_filter import LatticeCache
from crfrnn_np.testing import make_layer

C, H, W = 4, 13, 11
N = H * W
DTYPES = [(np.float64, 1e-12), (np.float32, 2e-5)]


def run(snippet, bottoms, dtype):
    """Forward of a step layer made from ``snippet`` (float ``dtype``); returns (layer, bottom, top)."""
    layer, bottom, top = make_layer(snippet, bottoms, dtype=dtype)
    layer.forward(bottom, top)
    return layer, bottom, top


@pytest.fixture
def scene(rng):
    """An image, its two lattices (in a cache the filter layers share), marginals P and a unary U."""
    image = rng.uniform(-100.0, 120.0, (1, 3, H, W))
    logits = 2.0 * rng.standard_normal((1, C, H, W))
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    unary = 2.0 * rng.standard_normal((1, C, H, W))
    return image, prob, unary


def lattices(image, dtype):
    cache = LatticeCache("cpu")
    spatial = cache.spatial(H, W, 2.0, dtype)
    bilateral = cache.bilateral(image[0].astype(dtype), 6.0, 25.0, dtype)
    return cache, [fused._Lattice(spatial, C, np.dtype(dtype)), fused._Lattice(bilateral, C, np.dtype(dtype))]


FILTERS = ['layer { name: "f" type: "PermutohedralFilter" bottom: "p" bottom: "d" top: "s" '
           'permutohedral_param { kernel: SPATIAL theta_gamma: 2 } }',
           'layer { name: "f" type: "PermutohedralFilter" bottom: "p" bottom: "d" top: "b" '
           'permutohedral_param { kernel: BILATERAL theta_alpha: 6 theta_beta: 25 } }']


def filter_layers(cache, prob, image, dtype):
    """The two PermutohedralFilter steps on P, sharing ``cache``: their tops S and B, (1, C, H, W)."""
    outputs = []
    for snippet in FILTERS:
        layer, bottom, top = make_layer(snippet, [prob, image], dtype=dtype)
        layer.cache = cache
        layer.forward(bottom, top)
        outputs.append(top[0].data.copy())
    return outputs


def rows(planes):
    """(1, C, H, W) planes as (N, C) rows."""
    return np.ascontiguousarray(planes.reshape(C, N).T)


def blurred(lat, prob_rows):
    """The FUSED splat and blur of (N, C) rows: V = B Sp P, (M + 1, C)."""
    pair = lat.buffers(True)
    lat.splat(prob_rows, pair[0])
    return lat.blur(pair)[0]


@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_kernel_splat_and_blur(scene, dtype, tol):
    """Splat and blur of pixel-major rows, then the lattice's slice with the norm: the PermutohedralFilter
    step's top, for both kernels."""
    image, prob, _ = scene
    cache, lats = lattices(image, dtype)
    for lat, expected in zip(lats, filter_layers(cache, prob, image, dtype)):
        got = lattice_cpu.slice_(blurred(lat, rows(prob.astype(dtype))), lat.arrays, scale=lat.norm)
        np.testing.assert_allclose(got, expected.reshape(C, N), rtol=0, atol=tol)


@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_kernel_vertex_product(scene, rng, dtype, tol):
    """A V on the vertices, then the slice: the Compatibility step (matrix A) applied to the PermutohedralFilter
    step's top (a C x C matrix commutes with the lattice filter)."""
    image, prob, _ = scene
    cache, lats = lattices(image, dtype)
    a = rng.standard_normal((C, C))
    for lat, filtered in zip(lats, filter_layers(cache, prob, image, dtype)):
        v = blurred(lat, rows(prob.astype(dtype)))
        product = lat.product(a, v, np.empty_like(v))
        got = lattice_cpu.slice_(product, lat.arrays, scale=lat.norm)
        layer, bottom, top = make_layer('layer { name: "c" type: "Compatibility" bottom: "x" top: "y" }',
                                        [filtered], dtype=dtype)
        layer.blobs[0].data[0, 0] = a
        layer.forward(bottom, top)
        np.testing.assert_allclose(got, top[0].data.reshape(C, N), rtol=0, atol=10 * tol)


@pytest.mark.parametrize("last", [False, True], ids=["softmax", "logits"])
@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_kernel_slice_softmax(scene, rng, dtype, tol, last):
    """Both slices with their norms, the diagonal compatibilities, U − Φ and the next softmax in one pixel pass:
    PermutohedralFilter x 2, Compatibility (diagonal) x 2, Eltwise SUM, UnaryAdd and Softmax steps."""
    image, prob, unary = scene
    cache, lats = lattices(image, dtype)
    s, b = filter_layers(cache, prob, image, dtype)
    factors = [rng.uniform(-3.0, 3.0, C).astype(dtype) for _ in range(2)]
    weighted = []
    for x, f in zip((s, b), factors):
        layer, bottom, top = make_layer('layer { name: "c" type: "Compatibility" bottom: "x" top: "y" }', [x],
                                        dtype=dtype)
        layer.blobs[0].data[0, 0] = np.diag(f)
        layer.forward(bottom, top)
        weighted.append(top[0].data.copy())
    _, _, message = run('layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "m" '
                        'eltwise_param { operation: SUM } }', weighted, dtype)
    _, _, logits = run('layer { name: "u" type: "UnaryAdd" bottom: "u" bottom: "m" top: "l" }',
                       [unary, message[0].data], dtype)
    _, _, expected = run('layer { name: "s" type: "Softmax" bottom: "l" top: "p" }', [logits[0].data], dtype)
    vs = [blurred(lat, rows(prob.astype(dtype))) for lat in lats]
    out = np.empty((C, N), dtype) if last else np.empty((0, 0), dtype)
    following = np.empty((0, 0), dtype) if last else np.empty((N, C), dtype)
    fused._over_blocks(fused._slice_softmax, N, fused.SOFTMAX_BLOCK, rows(unary.astype(dtype)), vs[0],
                       lats[0].vertex, lats[0].weights, lats[0].alpha, lats[0].norm, vs[1], lats[1].vertex,
                       lats[1].weights, lats[1].alpha, lats[1].norm, factors[0], factors[1], following, out)
    if last:
        np.testing.assert_allclose(out, logits[0].data.reshape(C, N), rtol=0, atol=10 * tol)
    else:
        np.testing.assert_allclose(following, rows(expected[0].data), rtol=0, atol=tol)


def slice_without_alpha(buf, lat):
    """Sp^T buf, (C, N): the slice stage with the factor 1 (the backward's rows carry alpha already)."""
    weights = lat.weights.astype(buf.dtype)
    return sum(weights[:, r, None] * buf[lat.vertex[:, r] + 1] for r in range(lat.vertex.shape[1])).T


@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_kernel_slice_softmax_backward(scene, rng, dtype, tol):
    """Both slices of the transposed filters' vertex rows, the diagonal compatibilities, the Softmax step's
    backward, and the fan-out sum of the unary (UnaryAdd's ∂U added to the running ∂U)."""
    image, prob, _ = scene
    _, lats = lattices(image, dtype)
    p = rows(prob.astype(dtype))
    bufs = [rng.standard_normal(lat.shape).astype(dtype) for lat in lats]
    for buf in bufs:
        buf[0] = 0
    factors = [rng.uniform(-3.0, 3.0, C).astype(dtype) for _ in range(2)]
    running = rng.standard_normal((N, C)).astype(dtype)
    # the steps: the slice stage of each transposed filter (alpha already folded into the rows: factor 1), the
    # diagonal matrices, their sum, then Softmax's backward from P and dP
    d_prob = sum(f[:, None] * slice_without_alpha(buf, lat) for f, buf, lat in zip(factors, bufs, lats))
    layer, bottom, top = make_layer('layer { name: "s" type: "Softmax" bottom: "l" top: "p" }',
                                    [np.zeros((1, C, H, W))], dtype=dtype)
    top[0].data = prob.astype(dtype)
    top[0].diff = d_prob.reshape(1, C, H, W)
    layer.backward(top, [True], bottom)
    expected = rows(bottom[0].diff)
    grad = np.empty((N, C), dtype)
    unary_grad = running.copy()
    fused._over_blocks(fused._slice_softmax_backward, N, fused.CPU_BLOCK, bufs[0], lats[0].vertex,
                       lats[0].weights, bufs[1], lats[1].vertex, lats[1].weights, factors[0], factors[1], p, grad,
                       unary_grad)
    np.testing.assert_allclose(grad, expected, rtol=0, atol=10 * tol)
    np.testing.assert_allclose(unary_grad, running + expected, rtol=0, atol=10 * tol)


@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_kernel_vertex_outer(scene, rng, dtype, tol):
    """α Σ_v E_v V_vᵀ with E = Sp g (the splat of a pixel diff g): the Compatibility step's weight gradient
    Σ_i g_i x_iᵀ for its bottom x = α Spᵀ V (the slice of V), summed over the pixels."""
    image, prob, _ = scene
    _, lats = lattices(image, dtype)
    g = rng.standard_normal((N, C)).astype(dtype)
    for lat in lats:
        v = blurred(lat, rows(prob.astype(dtype)))
        e = lat.splat(g, np.empty(lat.shape, dtype))
        got = float(lat.alpha) * lat.outer(e, v)
        x = lattice_cpu.slice_(v, lat.arrays).reshape(1, C, H, W)
        layer, bottom, top = make_layer('layer { name: "c" type: "Compatibility" bottom: "x" top: "y" }', [x],
                                        dtype=dtype)
        layer.blobs[0].diff[...] = 0
        top[0].diff = g.T.reshape(1, C, H, W)
        layer.backward(top, [False], bottom)
        expected = layer.blobs[0].diff[0, 0]
        np.testing.assert_allclose(got, expected, rtol=0, atol=100 * tol * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("dtype, tol", DTYPES)
def test_kernel_softmax_planes_to_rows(rng, dtype, tol):
    """The Softmax step on Q0's planes (large logits included: exp of very negative arguments flushes to 0 in
    float32), as (N, C) rows."""
    q0 = (8.0 * rng.standard_normal((1, C, H, W))).astype(dtype)
    q0[0, 0, 0, :3] = [120.0, -120.0, 0.0]
    _, _, top = run('layer { name: "s" type: "Softmax" bottom: "q" top: "p" }', [q0], dtype)
    got = np.empty((N, C), dtype)
    fused._over_blocks(fused._softmax_planes_to_rows, N, fused.SOFTMAX_BLOCK, q0[0].reshape(C, N), got)
    np.testing.assert_allclose(got, rows(top[0].data), rtol=0, atol=tol)


@pytest.mark.parametrize("shape", [(4, 300), (300, 4), (1, 5), (5, 1)])
def test_kernel_transpose(rng, shape):
    """No step: (C, N) planes to (N, C) rows and back, as NumPy's transpose."""
    src = rng.standard_normal(shape).astype(np.float32)
    dst = np.empty(shape[::-1], np.float32)
    fused.transpose(src, dst)
    np.testing.assert_array_equal(dst, src.T)


def test_every_kernel_of_the_table_has_its_test():
    tested = {"_softmax_planes_to_rows": test_kernel_softmax_planes_to_rows,
              "lattice.cpu.splat + lattice.cpu.blur": test_kernel_splat_and_blur,
              "_vertex_product": test_kernel_vertex_product, "_slice_softmax": test_kernel_slice_softmax,
              "_slice_softmax_backward": test_kernel_slice_softmax_backward,
              "_vertex_outer": test_kernel_vertex_outer, "_transpose": test_kernel_transpose}
    assert set(tested) == set(fused.REPLACES)
    for name in fused.REPLACES:
        assert name.startswith("lattice.") or hasattr(fused, name), name


def test_exp_float32_within_one_ulp_and_no_denormals():
    x = np.linspace(-120.0, 0.0, 400_001).astype(np.float32)
    got = x.copy()
    _exp_nonpositive(got, got.size, np.empty(got.size, np.int32))
    want = np.exp(x.astype(np.float64))
    normal = x >= -87.0
    ulp = np.spacing(want[normal].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[normal] - want[normal]) / ulp) <= 1.5
    assert got[-1] == 1.0
    assert np.all(got[~normal] == 0.0)                     # flushed, never a denormal
    assert np.all((got == 0) | (got >= np.finfo(np.float32).tiny))


def test_exp_float64_is_math_exp(rng):
    x = -rng.uniform(0.0, 700.0, 1000)
    got = x.copy()
    _exp_nonpositive(got, got.size, np.empty(got.size, np.int32))
    np.testing.assert_allclose(got, np.exp(x), rtol=1e-15, atol=0)


@pytest.mark.parametrize("count", [0, 1, 17])
def test_exp_touches_only_count(count):
    x = np.full(20, -1.0, np.float32)
    _exp_nonpositive(x, count, np.empty(20, np.int32))
    np.testing.assert_allclose(x[:count], np.exp(-1.0), rtol=1e-7)
    assert np.all(x[count:] == -1.0)
