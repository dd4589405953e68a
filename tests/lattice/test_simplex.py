"""The scalar simplex helpers shared by the CPU and CUDA lattices, against the NumPy reference."""
import numpy as np
import pytest

from crfrnn_np.lattice import cpu, reference


@pytest.mark.parametrize("fn", [reference.round_half_even, cpu.round_half_even])
def test_round_half_to_even(fn):
    xs = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 2.5000002, -3.7]
    want = [0, 2, 2, 0, -2, -2, 0, 3, -4]
    got = [int(fn(np.float32(x))) for x in xs]
    assert got == want
