"""The FUSED cuda engine (fused/meanfield_cuda.py) kernel by kernel, each against the step layers it replaces
(``REPLACES``, the table that opens the module), run on the CPU on the same data: the device twin of
tests/fused/test_meanfield.py. Run by test_meanfield_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (or on
a real GPU: tests/integration/test_cuda_on_gpu.py).

Scene: N = 2 images of 4 x 5 pixels, C = 3 classes, non-diagonal W_s, W_b and mu, the two lattices of each
image from the CPU cache (their unnormalised filter K_x P and norm n_x are what the device kernels read; the
PermutohedralFilter steps give n_x * K_x P)."""
import os
import sys

import numpy as np

N, C, H, W = 2, 3, 4, 5
P = H * W
THETA_GAMMA, THETA_ALPHA, THETA_BETA = 2.0, 3.0, 30.0
FILTERS = ['layer { name: "f" type: "PermutohedralFilter" bottom: "p" bottom: "d" top: "s" '
           'permutohedral_param { kernel: SPATIAL theta_gamma: %g } }' % THETA_GAMMA,
           'layer { name: "f" type: "PermutohedralFilter" bottom: "p" bottom: "d" top: "b" '
           'permutohedral_param { kernel: BILATERAL theta_alpha: %g theta_beta: %g } }' % (THETA_ALPHA, THETA_BETA)]
COMPATIBILITY = 'layer { name: "c" type: "Compatibility" bottom: "x" top: "y" }'


def step(snippet, bottoms, dtype, blobs=()):
    """A CPU step layer on ``bottoms`` (its parameter blobs set to ``blobs``), forward run: (layer, bottom, top)."""
    from crfrnn_np.testing import make_layer
    layer, bottom, top = make_layer(snippet, bottoms, dtype=dtype)
    for blob, value in zip(layer.blobs, blobs):
        blob.data[...] = value.reshape(blob.shape)
    layer.forward(bottom, top)
    return layer, bottom, top


def back(layer, bottom, top, diff, propagate=None):
    """The step's backward from ``diff`` (its top's diff); returns its bottoms' diffs."""
    top[0].diff[...] = diff
    for blob in layer.blobs:
        blob.diff[...] = 0
    layer.backward(top, propagate or [True] * len(bottom), bottom)
    return [b.diff.copy() for b in bottom]


class Scene:
    """Inputs of one dtype, the CPU steps' forward through one mean-field iteration, and the kernels' inputs."""

    def __init__(self, dtype, rng):
        from crfrnn_np.layers.permutohedral_filter import LatticeCache
        self.dtype = dtype
        self.image = rng.uniform(-100, 120, (N, 3, H, W)).astype(dtype)
        logits = 2.0 * rng.standard_normal((N, C, H, W))
        self.prob = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(dtype)
        self.unary = (2.0 * rng.standard_normal((N, C, H, W))).astype(dtype)
        self.w_s, self.w_b, self.mu = [(np.diag(d) + 0.4 * rng.standard_normal((C, C))).astype(dtype)
                                       for d in ([3.0] * C, [5.0] * C, [-1.0] * C)]
        # the unnormalised filtered planes and the norms, from the CPU lattices the filter steps use
        self.cache = LatticeCache("cpu")
        lat_s, self.norm_s = self.cache.spatial(H, W, THETA_GAMMA, dtype)
        self.spatial = np.stack([lat_s.filter(self.prob[i].reshape(C, P)) for i in range(N)])
        bilateral = [self.cache.bilateral(self.image[i], THETA_ALPHA, THETA_BETA, dtype) for i in range(N)]
        self.norm_b = np.stack([norm for _, norm in bilateral])
        self.bilateral = np.stack([lat.filter(self.prob[i].reshape(C, P)) for i, (lat, _) in enumerate(bilateral)])
        self.products = np.stack([self.mu @ self.w_s, self.mu @ self.w_b]).astype(dtype)
        # the steps: S' and B' (the filters), W_s S', W_b B', their Eltwise sum, mu (sum), L = U - Phi, softmax
        self.filters = []
        for snippet in FILTERS:
            layer, bottom, top = step(snippet, [self.prob, self.image], dtype)
            layer.cache = self.cache
            layer.forward(bottom, top)
            self.filters.append((layer, bottom, top))
        self.compat = [step(COMPATIBILITY, [f[2][0].data.copy()], dtype, [w])
                       for f, w in zip(self.filters, (self.w_s, self.w_b))]
        self.sum = step('layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "m" '
                        'eltwise_param { operation: SUM } }', [c[2][0].data.copy() for c in self.compat], dtype)
        self.phi = step(COMPATIBILITY, [self.sum[2][0].data.copy()], dtype, [self.mu])
        self.logits = step('layer { name: "u" type: "UnaryAdd" bottom: "u" bottom: "m" top: "l" }',
                           [self.unary, self.phi[2][0].data.copy()], dtype)
        self.softmax = step('layer { name: "s" type: "Softmax" bottom: "l" top: "p" }',
                            [self.logits[2][0].data.copy()], dtype)

    def device(self, array):
        from numba import cuda
        return cuda.to_device(np.ascontiguousarray(array, self.dtype))

    def planes(self, array):
        """(N, C, H, W) as the (N, C, H*W) device array the kernels read."""
        return self.device(array.reshape(array.shape[0], -1, P))


def check(name, got, want, dtype):
    tol = 1e-12 if dtype == np.float64 else 2e-5
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale, err_msg=name)
    print("%s %s: equal to its steps (largest difference %.1e)" % (name, np.dtype(dtype).name,
                                                                  float(np.abs(got - want).max())))


def check_products(scene):
    """A_x = mu W_x: the Compatibility steps W_x then mu on any planes X give A_x X."""
    from crfrnn_np.cuda_kernel import grid_1d
    from crfrnn_np.fused.meanfield_cuda import _products_kernel
    from numba import cuda
    dtype = scene.dtype
    a = cuda.device_array((2, C, C), dtype)
    _products_kernel[grid_1d(2 * C * C)](scene.device(scene.w_s), scene.device(scene.w_b), scene.device(scene.mu),
                                         dtype(0), a)
    a = a.copy_to_host()
    x = scene.prob
    for k, w in enumerate((scene.w_s, scene.w_b)):
        _, _, first = step(COMPATIBILITY, [x], dtype, [w])
        _, _, second = step(COMPATIBILITY, [first[0].data.copy()], dtype, [scene.mu])
        got = np.einsum("jk,nkp->njp", a[k], x.reshape(N, C, P))
        check("_products_kernel (%s)" % ("W_s", "W_b")[k], got, second[0].data.reshape(N, C, P), dtype)


def check_logits_softmax(scene):
    """One pixel pass: both filters' norms, Compatibility W_s, W_b, Eltwise SUM, Compatibility mu, UnaryAdd,
    then (or not, for the last iteration) the next Softmax."""
    from crfrnn_np.cuda_kernel import grid_1d
    from crfrnn_np.fused.meanfield_cuda import _logits_softmax_kernel
    from numba import cuda
    dtype = scene.dtype
    for last in (1, 0):
        out = cuda.device_array((N, C, P), dtype)
        _logits_softmax_kernel[grid_1d(N * P)](scene.planes(scene.unary), scene.device(scene.spatial),
                                               scene.device(scene.bilateral), scene.device(scene.norm_s),
                                               scene.device(scene.norm_b), scene.device(scene.products), last, out)
        want = (scene.logits if last else scene.softmax)[2][0].data.reshape(N, C, P)
        check("_logits_softmax_kernel (%s)" % ("logits" if last else "softmax"), out.copy_to_host(), want, dtype)


def steps_backward(scene, g):
    """The steps' backward of one iteration from g = dL: dU, the filters' top diffs dS', dB' and the three
    Compatibility weight diffs."""
    d_unary, d_phi = back(*scene.logits, g)
    (d_sum,) = back(*scene.phi, d_phi)
    d_mu = scene.phi[0].blobs[0].diff.reshape(C, C).copy()
    d_compat = back(*scene.sum, d_sum)
    d_filters, d_w = [], []
    for compat, d in zip(scene.compat, d_compat):
        (d_x,) = back(*compat, d)
        d_filters.append(d_x)
        d_w.append(compat[0].blobs[0].diff.reshape(C, C).copy())
    return d_unary, d_filters, d_w + [d_mu]


def check_backward_pixel(scene, rng):
    """Softmax backward of dP = R_s + R_b (the Split's sum of the two reverse filters), dU += g (UnaryAdd's
    fan-out), and E_x = n_x (dS'_x, dB'_x): the UnaryAdd, Compatibility mu, Eltwise and Compatibility W_x
    backwards up to the filters' normalisation."""
    from crfrnn_np.cuda_kernel import grid_1d
    from crfrnn_np.fused.meanfield_cuda import _backward_pixel_kernel
    from numba import cuda
    dtype = scene.dtype
    rev = [rng.standard_normal((N, C, P)).astype(dtype) for _ in range(2)]
    before = rng.standard_normal((N, C, P)).astype(dtype)
    prob = scene.softmax[2][0].data.copy()                       # a P_t
    grad, unary_diff = cuda.device_array((N, C, P), dtype), scene.device(before)
    e_s, e_b = cuda.device_array((N, C, P), dtype), cuda.device_array((N, C, P), dtype)
    _backward_pixel_kernel[grid_1d(N * P)](1, scene.planes(prob), scene.device(rev[0]), scene.device(rev[1]), grad,
                                           scene.device(scene.norm_s), scene.device(scene.norm_b),
                                           scene.device(scene.products), 2, unary_diff, 1, grad, e_s, e_b)
    # the Softmax step's backward from dP = R_s + R_b (the Split of P_t into the two filters sums them)
    layer, bottom, top = step('layer { name: "s" type: "Softmax" bottom: "l" top: "p" }',
                              [scene.logits[2][0].data.copy()], dtype)
    top[0].data[...] = prob                                      # the backward reads its top
    (g,) = back(layer, bottom, top, (rev[0] + rev[1]).reshape(N, C, H, W))
    check("_backward_pixel_kernel (softmax backward)", grad.copy_to_host(), g.reshape(N, C, P), dtype)
    d_unary, d_filters, _ = steps_backward(scene, g)
    check("_backward_pixel_kernel (dU +=)", unary_diff.copy_to_host(), before + d_unary.reshape(N, C, P), dtype)
    norms = (scene.norm_s[None, None, :], scene.norm_b[:, None, :])
    for name, e, d, n_x in zip(("E_s", "E_b"), (e_s, e_b), d_filters, norms):
        check("_backward_pixel_kernel (%s)" % name, e.copy_to_host(), n_x * d.reshape(N, C, P), dtype)


def check_parameter_diffs(scene, rng):
    """dA_x over blocks of pixels, their sum, then dW_x += mu^T dA_x and dmu += sum_x dA_x W_x^T: the three
    Compatibility steps' weight gradients, accumulated on top of what the diffs held."""
    from crfrnn_np.cuda_kernel import grid_1d
    from crfrnn_np.fused.meanfield_cuda import _parameter_diff_kernel, _sum_blocks_kernel, _weight_partial_kernel
    from numba import cuda
    dtype = scene.dtype
    g = rng.standard_normal((N, C, H, W)).astype(dtype)
    block = 7                                                    # several blocks, the last one partial
    blocks = -(-N * P // block)
    partial = cuda.device_array((blocks, 2, C, C), dtype)
    _weight_partial_kernel[grid_1d(blocks * 2 * C * C)](scene.planes(g), scene.device(scene.spatial),
                                                        scene.device(scene.bilateral), scene.device(scene.norm_s),
                                                        scene.device(scene.norm_b), block, 0, dtype(0), partial)
    _sum_blocks_kernel[grid_1d(2 * C * C)](partial)
    held = [rng.standard_normal((C, C)).astype(dtype) for _ in range(3)]
    diffs = [scene.device(h) for h in held]
    _parameter_diff_kernel[grid_1d(3 * C * C)](partial, scene.device(scene.w_s), scene.device(scene.w_b),
                                               scene.device(scene.mu), dtype(0), 7, *diffs)
    _, _, want = steps_backward(scene, g)
    for name, got, h, w in zip(("dW_s", "dW_b", "dmu"), diffs, held, want):
        check("_weight_partial_kernel + _sum_blocks_kernel + _parameter_diff_kernel (%s)" % name,
              got.copy_to_host(), h + w, dtype)


#: The REPLACES keys each check covers; the step layers' own device kernels (the Softmax step's, the
#: lattice filter) have their checks with those layers (tests/layers/test_crf_cuda.py, tests/lattice).
CHECKS = {"_products_kernel": check_products, "_logits_softmax_kernel": check_logits_softmax,
          "_backward_pixel_kernel": check_backward_pixel,
          "_weight_partial_kernel": check_parameter_diffs,
          "_sum_blocks_kernel + _parameter_diff_kernel": check_parameter_diffs}


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np.cuda_kernel import recording
    from crfrnn_np.testing import assert_declared
    from crfrnn_np.fused import meanfield_cuda
    assert set(CHECKS) | {"layers.crf_cuda.softmax", "CudaLattice.filter_device"} == set(meanfield_cuda.REPLACES)
    rng = np.random.default_rng(21)
    with recording() as launches:
        for dtype in (np.float64, np.float32):
            scene = Scene(dtype, rng)
            check_products(scene)
            check_logits_softmax(scene)
            check_backward_pixel(scene, rng)
            check_parameter_diffs(scene, rng)
    assert_declared(launches)
    print("cudasim fused kernels OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
