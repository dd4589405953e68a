"""``crfrnn segment --backend cuda`` end to end under the numba.cuda simulator (cudasim_segment_cli_check.py in
a subprocess with NUMBA_ENABLE_CUDASIM=1): the single-image and the data-set forms exit 0 and write the label
maps of ``--backend cpu``, bit for bit, for a tiny CRF-RNN net (T = 2, STEPS engine) with saved weights; each
image moves only itself in and its scores back, its lattice build included. Without a GPU, the one-line error:
test_main_cuda.py."""
import pathlib

import pytest

from crfrnn_np.testing import run_under_simulator

HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.cudasim
def test_segment_on_the_cuda_backend_equals_cpu_under_simulator():
    out = run_under_simulator([HERE / "cudasim_segment_cli_check.py"], ok="cudasim segment OK")
    for name in ("one.png", "set/a.png", "set/b.png"):
        assert "%s: cuda == cpu" % name in out
    kernels = out.split("kernels:")[1].split("\n")[0].split()
    for kernel in ("conv_forward_kernel", "softmax_forward_kernel", "compatibility_kernel", "_splat_kernel",
                   "_blur_kernel", "_slice_kernel", "_embed_kernel"):
        assert kernel in kernels, (kernel, kernels)
    assert "segment transfers (to_device, to_host): [(1, 1), (1, 1)]" in out
