"""The NumPy reference and the numba CPU lattice side by side, stage by stage, through one stage API:
``build(features)`` gives the lattice record; ``splat(values, lattice)``, ``blur(buf, lattice, reverse)``,
``slice_(buf, lattice)`` and ``filter_(values, lattice, reverse)`` take it. Bit for bit in float32 and
float64, for the CRF's two feature dimensions and a larger one."""
import numpy as np
import pytest

from crfrnn_np.lattice import cpu, reference

STAGES = ("build", "splat", "blur", "slice_", "filter_")


def test_both_modules_have_the_stages():
    for stage in STAGES:
        assert callable(getattr(reference, stage)) and callable(getattr(cpu, stage))


@pytest.mark.parametrize("d", [2, 5, 7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stage_by_stage(rng, d, dtype):
    features = (rng.normal(size=(600, d)) * 1.7).astype(np.float32)
    values = rng.normal(size=(3, 600)).astype(dtype)
    ref, fast = reference.build(features), cpu.build(features)
    for key in ("vertex", "weights", "neighbours", "num_vertices"):
        np.testing.assert_array_equal(fast[key], ref[key], err_msg="build: " + key)
    buf_ref, buf_fast = reference.splat(values, ref), cpu.splat(values, fast)
    np.testing.assert_array_equal(buf_fast, buf_ref, err_msg="splat")
    for reverse in (False, True):
        blurred_ref = reference.blur(buf_ref, ref, reverse)
        blurred_fast = cpu.blur(buf_fast.copy(), fast, reverse)
        np.testing.assert_array_equal(blurred_fast, blurred_ref, err_msg="blur, reverse=%s" % reverse)
        np.testing.assert_array_equal(cpu.slice_(blurred_fast, fast), reference.slice_(blurred_ref, ref),
                                      err_msg="slice_")
        np.testing.assert_array_equal(cpu.filter_(values, fast, reverse), reference.filter_(values, ref, reverse),
                                      err_msg="filter_, reverse=%s" % reverse)
