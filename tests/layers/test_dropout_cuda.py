"""The PCG64 jump-ahead of the device Dropout (layers/dropout_cuda.py), on the host against NumPy's own
generator: the k-th ``random()`` draw from any state, the generator moved on by n draws (its buffered 32-bit
half kept), and another bit generator recognised as having no device form. The device mask itself is checked
bit for bit against the CPU layer under the simulator in test_copy_cuda.py."""
import numba
import numpy as np

from crfrnn_np.layers.dropout_cuda import advance, generator_state, pcg64_uniform


def test_kth_draw_equals_numpy():
    rng = np.random.default_rng(123)
    rng.random(5)
    state = [numba.uint64(v) for v in generator_state(rng)]
    expected = rng.random(70000)
    for k in (1, 2, 3, 64, 65, 4097, 70000):
        assert pcg64_uniform(*state, k) == expected[k - 1], k


def test_advance_equals_drawing():
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for g in (a, b):
        g.integers(0, 5, dtype=np.uint32)               # leaves a buffered 32-bit half
    a.random(100003)
    advance(b, 100003)
    assert a.bit_generator.state == b.bit_generator.state
    np.testing.assert_array_equal(a.random(4), b.random(4))
    assert a.integers(0, 2**31, dtype=np.uint32) == b.integers(0, 2**31, dtype=np.uint32)


def test_other_bit_generators_have_no_device_state():
    assert generator_state(np.random.Generator(np.random.MT19937(1))) is None
    assert generator_state(np.random.Generator(np.random.PCG64DXSM(1))) is None
