"""Convolution and Deconvolution on the device as implicit GEMMs (layers/conv_cuda.py: no im2col buffer):
forward, data, weight and bias gradients equal the CPU layers under the numba.cuda simulator, float32 and
float64, with padding, stride, dilation, groups, non-square kernels, a 1x1 kernel and two bottoms; a 3-D
convolution (run on the host inside a cuda net) too (cudasim_dense_check.py in a subprocess)."""
import pathlib
import sys

import pytest

from crfrnn_np.layers.conv_cuda import _geo, supported
from crfrnn_np.layers.conv import ConvGeometry

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "crfrnn_np"))
from cudasim_net import assert_part, run_part  # noqa: E402  (the simulator check beside the engine tests)


@pytest.mark.cudasim
def test_convolutions_on_the_device_equal_cpu(cudasim_group):
    out = cudasim_group("conv")
    for title in ("conv pad stride bias", "conv group dilation", "conv 1x1 two bottoms", "conv 3-D (host)",
                  "deconv stride pad bias", "deconv group"):
        for dtype in ("float32", "float64"):
            assert "%s %s: cuda == cpu" % (title, dtype) in out
    for kernel in ("conv_forward_kernel", "conv_backward_data_kernel", "conv_backward_weight_kernel"):
        assert kernel in out


def test_kernel_geometry_is_the_host_geometry_lifted_to_2d():
    geo = ConvGeometry(4, (7,), 6, (3,), (1,), (2,), (1,), 2, "float32")        # a 1-D convolution
    assert supported(geo)
    # (C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G); OW = (7 + 2 - 3) // 2 + 1 = 4
    assert _geo(geo) == (4, 1, 7, 6, 1, 4, 1, 3, 1, 2, 0, 1, 1, 1, 2)
    assert not supported(ConvGeometry(2, (3, 3, 3), 2, (1, 1, 1), (0, 0, 0), (1, 1, 1), (1, 1, 1), 1, "float32"))


@pytest.mark.cudasim
def test_conv_net_under_simulator():
    """A net of two Convolutions (bias, group, dilation), ReLU, MAX and AVE Pooling and a strided Deconvolution
    (tests/crfrnn_np/cudasim_net.py): equal to the CPU, one input in and one output back per forward."""
    assert_part(run_part('conv'),
                kernels=("conv_forward_kernel", "conv_backward_data_kernel", "conv_backward_weight_kernel",
                         "channel_sum_kernel"),
                one_in_one_out=("fcn float32", "fcn float64"))


@pytest.mark.cudasim
def test_phase_split_gather_under_simulator():
    """The data gradient of strided Convolutions and the forward of Deconvolutions (strides 1, 2, 3, 8, 2x3, with
    padding, dilation and groups) equal the CPU forms, float32 and float64; for a scaled-down FCN-8s upscore the
    gather runs stride^2 = 64 times fewer K-loop steps than the dense implicit GEMM (counted as the simulator's
    syncthreads calls; the shape fills the simulator's 4 x 4 tiles, so no padding blurs the ratio) and adds the
    valid taps in the dense order, bit for bit (tests/layers/cudasim_conv_phases.py)."""
    from crfrnn_np.testing import run_under_simulator
    out = run_under_simulator([pathlib.Path(__file__).parent / "cudasim_conv_phases.py"], ok="cudasim phases OK")
    for title in ("conv stride 2 pad dilation", "conv stride 3 group", "conv stride 8", "deconv stride 1",
                  "deconv stride 3 dilation", "deconv stride 2x3"):
        for dtype in ("float32", "float64"):
            assert "%s %s: cuda == cpu" % (title, dtype) in out
    # 2 x 2 bottom -> 16 x 16 top: 64 phases of 2 x 2 pixels, one 4 x 4 block each (16 threads); K = 3*16*16 =
    # 768 (192 steps) dense, 3*2*2 = 12 (3 steps) in a phase: 64*16*192 = 196608 against 64*16*3 = 3072
    assert ("upscore gather float32 (C 3, kernel 16, stride 8, pad 4, 2x2 bottom, tile 4): 3072 K steps counted = "
            "3072 phase-split, dense 196608, ratio 64.0") in out
    assert "phase_taps" in out.split("launched:")[1].split("\n")[0]


def test_phase_taps_are_the_taps_that_meet_an_output():
    """``phase_taps(r, s, d, k)`` (run as Python) against the brute-force list, for every residue, stride 1..9,
    dilation 1..4 and kernel 1..17 (so gcd(s, d) > 1, s > k and taps beyond the first period)."""
    from crfrnn_np.cuda_kernel import DEVICE_FUNCTIONS
    phase_taps = DEVICE_FUNCTIONS["crfrnn_np.layers.conv_cuda.phase_taps"].py_func
    for s in range(1, 10):
        for d in range(1, 5):
            for k in range(1, 18):
                for r in range(0, 2 * s + 3):
                    first, step, count = phase_taps(r, s, d, k)
                    assert [first + i * step for i in range(count)] == \
                        [t for t in range(k) if (r - t * d) % s == 0], (r, s, d, k)
