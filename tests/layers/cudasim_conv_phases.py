"""Under the numba.cuda simulator: the phase-split gather of layers/conv_cuda.py (Convolution's data gradient and
Deconvolution's forward), run by test_conv_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1.

* Convolution and Deconvolution layers with strides 1, 2, 3 and 8, non-square strides, padding, dilation,
  strides larger than the kernel (pixels no tap reaches) and than the image (empty phases), several images and
  groups, float32 and float64: forward, data, weight and bias gradients on ``cuda`` equal ``cpu``
  (``cudasim_dense_check.run_both``, with its small simulator tile).
* The work of the gather for a scaled-down FCN-8s ``upscore`` (Deconvolution of 3 channels, kernel 16, stride 8,
  pad 4, a 2 x 2 bottom): the K-loop steps the kernel runs, counted as the simulator's ``syncthreads`` calls (two per
  step and thread), equal the count of the phase-split GEMM and are about stride^2 fewer than those of the dense
  GEMM over every tap; the result is bit for bit the sum over the valid taps in the dense order (so the old
  kernel's result) and equals the host's col2im form.
"""
import itertools
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import cudasim_dense_check as dense  # noqa: E402  (the runner of the dense layers' simulator checks)


def _layer(kind, params, bias=True):
    return ('layer { name: "c" type: "%s" bottom: "x" top: "y" convolution_param { %s %s '
            'weight_filler { type: "gaussian" std: 1 } } }' % (kind, params, "" if bias else "bias_term: false"))


#: (title, net, phase) as cudasim_dense_check.GROUPS: the data gradient of each Convolution and the forward of
#: each Deconvolution run the phase-split gather (its "conv" group has more stride-1 and stride-2 cases; the
#: stride-8 Deconvolution is :func:`count_upscore`'s).
CASES = [
    ("conv stride 2 pad dilation", dense._net(_layer("Convolution", "num_output: 2 kernel_size: 3 stride: 2 pad: 2 "
                                                     "dilation: 2", bias=False), ("x", 1, 2, 6, 5)), "TEST"),
    ("conv stride 3 group", dense._net(_layer("Convolution", "num_output: 4 kernel_h: 4 kernel_w: 3 stride: 3 pad: 1 "
                                              "group: 2"), ("x", 2, 2, 4, 5)), "TEST"),
    ("conv stride 8", dense._net(_layer("Convolution", "num_output: 2 kernel_size: 3 stride: 8"),
                                 ("x", 1, 1, 3, 9)), "TEST"),            # rows 3..7: empty phases
    ("deconv stride 1", dense._net(_layer("Deconvolution", "num_output: 2 kernel_size: 2 pad: 1 dilation: 2"),
                                   ("x", 1, 3, 3, 3)), "TEST"),
    ("deconv stride 3 dilation", dense._net(_layer("Deconvolution", "num_output: 2 kernel_size: 3 stride: 3 pad: 1 "
                                                   "dilation: 2", bias=False), ("x", 1, 2, 2, 3)), "TEST"),
    ("deconv stride 2x3", dense._net(_layer("Deconvolution", "num_output: 2 kernel_h: 3 kernel_w: 5 stride_h: 2 "
                                            "stride_w: 3 pad_h: 1 pad_w: 0"), ("x", 1, 2, 2, 2)), "TEST"),
]


def valid_taps(r, s, d, k):
    """The taps t < k with (r - t d) divisible by s, by brute force."""
    return [t for t in range(k) if (r - t * d) % s == 0]


def gather_steps(geo, num, tile, phased):
    """K-loop steps, summed over the threads, of the backward_data GEMM: the dense one over every tap (the kernel
    before the phase split) or the phase-split one, from the launch geometry alone."""
    C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G = geo
    blocks = lambda n: -(-n // tile)                    # noqa: E731
    per_block = tile * tile * blocks(C // G) * num * G  # threads of one column block, over rows, images, groups
    if not phased:
        return blocks(H * W) * per_block * blocks(O // G * kh * kw)
    per_phase = blocks(-(-H // sh) * -(-W // sw))
    total = 0
    for py, px in itertools.product(range(min(sh, H)), range(min(sw, W))):    # empty phases return at once
        taps = len(valid_taps(py + ph, sh, dh, kh)) * len(valid_taps(px + pw, sw, dw, kw))
        total += per_phase * per_block * blocks(O // G * taps)
    return total


def ordered_gather(dy, w, geo):
    """``dx[c, h, w] = sum of W[o, c, ki, kj] dy[o, oh, ow]`` over the valid taps, added one by one in the dense
    (o, ki, kj) order in the arrays' dtype (G = 1): what each thread of the kernel adds up."""
    C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G = geo
    acc = np.zeros((C, H, W), dy.dtype)
    hh, ww = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    for o, ki, kj in itertools.product(range(O), range(kh), range(kw)):
        a, b = hh + ph - ki * dh, ww + pw - kj * dw
        ok = (a >= 0) & (b >= 0) & (a % sh == 0) & (b % sw == 0) & (a // sh < OH) & (b // sw < OW)
        acc[:, ok] = acc[:, ok] + w[o, :, ki, kj][:, None] * dy[o, a[ok] // sh, b[ok] // sw][None, :]
    return acc


def count_upscore(dtype):
    """The scaled-down upscore: steps counted under the simulator against both formulas (kernel 2f, stride f,
    pad f/2: the bilinear upsampling geometry of deconv.py)."""
    from numba import cuda
    from numba.cuda.simulator import kernel as simulator

    from crfrnn_np import config
    from crfrnn_np.layers import conv_cuda
    from crfrnn_np.layers.conv import ConvGeometry
    C, k, s, pad, hw = 3, 16, 8, 4, 2
    out = s * (hw - 1) + k - 2 * pad                    # 16: the Deconvolution's top, the convolution's bottom
    geometry = ConvGeometry(C, (out, out), C, (k, k), (pad, pad), (s, s), (1, 1), 1, dtype)
    geo = conv_cuda._geo(geometry)
    rng = np.random.default_rng(5)
    dy = rng.standard_normal((1, C, hw, hw)).astype(dtype)         # the Deconvolution's bottom
    w = rng.standard_normal((C, C, k, k)).astype(dtype)
    dx = cuda.device_array((1, C, out, out), dtype)
    calls = itertools.count()
    sync = simulator.BlockThread.syncthreads

    def counted(thread):
        next(calls)                                     # itertools.count: atomic under the GIL
        return sync(thread)

    simulator.BlockThread.syncthreads = counted
    try:
        conv_cuda.backward_data(geometry, 1, cuda.to_device(dy), cuda.to_device(w), dx)
    finally:
        simulator.BlockThread.syncthreads = sync
    steps = next(calls) // 2                            # two syncthreads per K step
    phased = gather_steps(geo, 1, config.GEMM_TILE, True)
    dense_steps = gather_steps(geo, 1, config.GEMM_TILE, False)
    assert steps == phased, (steps, phased)
    got = dx.copy_to_host()[0]
    np.testing.assert_array_equal(got, ordered_gather(dy[0], w, geo))
    expected = np.zeros_like(got)
    geometry.backward_data(dy[0], w.reshape(C, -1), expected)                  # the host's col2im form
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.abs(expected).max())
    print("upscore gather %s (C %d, kernel %d, stride %d, pad %d, %dx%d bottom, tile %d): %d K steps counted = %d "
          "phase-split, dense %d, ratio %.1f" % (dtype, C, k, s, pad, hw, hw, config.GEMM_TILE, steps, phased,
                                                 dense_steps, dense_steps / steps))
    assert dense_steps / steps > 0.85 * s * s


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np import config
    simulator = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    if simulator:                       # on a real GPU: the configured tile and block
        config.GEMM_TILE = dense.SIMULATOR_TILE         # before the kernel modules are imported (see there)
        config.THREADS_PER_BLOCK = dense.SIMULATOR_THREADS
    dense.GROUPS["phases"] = CASES
    dense.check_group("phases")
    if simulator:                       # the steps are counted through the simulator's syncthreads
        count_upscore("float32")        # float64 runs the same kernel (the cases above check its values)
    print("cudasim phases OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
