"""fused/meanfield_cuda.py: MultiStageMeanfield's FUSED engine on the ``cuda`` backend.

Under the numba.cuda simulator (one subprocess, tests/fused/cudasim_meanfield_cuda_check.py): against STEPS on
the device and FUSED on the CPU (top, bottom diffs, parameter diffs; float64 to 1e-10, float32 to 1e-5), a
float64 gradient check, the host <-> device transfers of a forward, and the kernel launches per iteration
against STEPS. The kernels' PTX for sm_80/sm_90 is compiled by tests/crfrnn_np/test_cuda_kernel.py.
"""
import pathlib
import re

import pytest

from crfrnn_np.fused import meanfield_cuda
from crfrnn_np.testing import run_under_simulator

SCRIPT = pathlib.Path(__file__).resolve().parent / "cudasim_meanfield_cuda_check.py"


def test_replaces_table_names_kernels_of_the_module():
    """Every kernel of the module's table is a registered gpu_kernel of the module (or the step layer's and
    the lattice's device functions it calls), and every step it lists is a step layer type of the unrolled
    layer."""
    from crfrnn_np.cuda_kernel import KERNELS
    steps = {"Softmax", "PermutohedralFilter", "Compatibility", "Eltwise", "UnaryAdd", "Split"}
    own = {name.rsplit(".", 1)[-1] for name in KERNELS if name.startswith(meanfield_cuda.__name__ + ".")}
    listed = set()
    for kernels, replaced in meanfield_cuda.REPLACES.items():
        assert set(replaced) <= steps, replaced
        listed |= {k.strip() for k in kernels.split("+")}
    assert own <= listed, own - listed
    assert listed - own == {"layers.crf_cuda.softmax", "CudaLattice.filter_device"}, listed - own


@pytest.mark.cudasim
def test_fused_cuda_engine_under_simulator():
    """One run of the simulator script (about 25 s of CPU; one test, so that pytest-xdist never runs it
    twice), then each of its checks."""
    out = run_under_simulator([SCRIPT], ok="cudasim fused meanfield OK")
    check_equals_steps_on_cuda_and_fused_on_cpu(out)
    check_gradient_float64(out)
    check_forward_moves_only_inputs_and_outputs(out)
    check_fewer_launches_per_iteration_than_steps(out)


def check_equals_steps_on_cuda_and_fused_on_cpu(simulator_output):
    for line in ("compare FUSED cuda float64 against cuda STEPS float64 to 1e-10 OK",
                 "compare FUSED cuda float64 against cpu FUSED float64 to 1e-10 OK",
                 "compare FUSED cuda float32 against cpu FUSED float32 to 1e-05 OK",
                 "compare FUSED cuda float32 against cuda STEPS float64 to 1e-05 OK",
                 "propagate_down OK"):
        assert line in simulator_output, simulator_output
    launched = simulator_output.split("launched:")[1].split("\n")[0].split()
    for kernel in ("_products_kernel", "_logits_softmax_kernel", "_backward_pixel_kernel", "_weight_partial_kernel",
                   "_sum_blocks_kernel", "_parameter_diff_kernel"):
        assert kernel in launched, kernel


def check_gradient_float64(simulator_output):
    err = float(re.search(r"gradient check float64: largest relative error (\S+)", simulator_output).group(1))
    assert err <= 1e-6, err


def check_forward_moves_only_inputs_and_outputs(simulator_output):
    """One forward of a net with only the CRF layer (batch of 2): the unary, Q0 and the image cross once each,
    the top comes back once, nothing else, the first forward included (the lattices are built on the device
    from the device image). The backward: the top's diff in, the unary's and Q0's diffs back."""
    expected = ("transfers float64: first forward {'to_device': 3, 'to_host': 1}, forward {'to_device': 3, "
                "'to_host': 1}, backward {'to_device': 1, 'to_host': 2}")
    assert expected in simulator_output, simulator_output


def check_fewer_launches_per_iteration_than_steps(simulator_output):
    """One image: FUSED launches the two lattice filters without their norm pass (1 splat + 3 blurs + 1 slice,
    1 + 6 + 1) and one pixel kernel per forward iteration, one more (the weight partial sums) per backward one."""
    per = {engine: tuple(int(x) for x in re.search(r"launches per iteration %s: forward (\d+) backward (\d+)"
                                                   % engine, simulator_output).groups())
           for engine in ("STEPS", "FUSED")}
    assert per["FUSED"] == (13 + 1, 13 + 2), per
    assert per["FUSED"][0] < per["STEPS"][0] and per["FUSED"][1] < per["STEPS"][1], per


@pytest.mark.cudasim
def test_each_kernel_against_the_steps_it_replaces_under_simulator():
    """Kernel by kernel (tests/fused/cudasim_meanfield_cuda_kernels_check.py): every kernel of ``REPLACES``
    against the CPU step layers it stands for, on the same lattices and data, float64 and float32; the
    script fails when a kernel of the table has no check."""
    out = run_under_simulator([SCRIPT.parent / "cudasim_meanfield_cuda_kernels_check.py"],
                              ok="cudasim fused kernels OK")
    for kernel in ("_products_kernel (W_b)", "_logits_softmax_kernel (softmax)", "_backward_pixel_kernel (E_b)",
                   "_parameter_diff_kernel (dmu)"):
        assert "%s float64: equal to its steps" % kernel in out and "%s float32: equal" % kernel in out, kernel
