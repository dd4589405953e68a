"""The fused mean-field kernels' own pieces against independent references (their composition is held to
the unrolled step layers in test_meanfield.py)."""
import numpy as np
import pytest

from crfrnn_np.fused.meanfield import _exp_nonpositive


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
