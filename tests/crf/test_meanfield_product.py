"""MultiStageMeanfield's off-BLAS compatibility product against a naive triple loop."""
import numpy as np
import pytest

from crfrnn_np.layers.multi_stage_meanfield import PRODUCT_BLOCK, compatibility_product


@pytest.mark.parametrize("c_out, c_in, pixels", [(4, 6, 2 * PRODUCT_BLOCK + 3), (5, 3, 7), (1, 1, 1), (2, 4, 9)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_product_matches_naive_loops(rng, c_out, c_in, pixels, dtype):
    weight = rng.normal(size=(c_out, c_in)).astype(dtype)
    bottom = rng.normal(size=(2, c_in, 1, pixels)).astype(dtype)
    top = np.full((2, c_out, 1, pixels), np.nan, dtype)
    compatibility_product(weight, bottom, top)
    expected = np.zeros((2, c_out, 1, pixels))
    for n in range(2):
        for p in range(c_out):
            for q in range(c_in):
                expected[n, p, 0] += float(weight[p, q]) * bottom[n, q, 0].astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(top, expected, rtol=tol, atol=tol)
    assert top.dtype == dtype


def test_product_rejects_non_contiguous_images(rng):
    bottom = rng.normal(size=(1, 3, 4, 4))[:, :, :, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        compatibility_product(np.eye(3), bottom, np.empty((1, 3, 4, 2)))


def test_product_from_base_is_the_separate_subtraction_bit_for_bit(rng):
    # base − weight · x in one pass equals the product followed by the UnaryAdd subtraction exactly
    weight = rng.normal(size=(3, 5)).astype(np.float32)
    bottom = rng.normal(size=(2, 5, 3, 200)).astype(np.float32)
    base = rng.normal(size=(2, 3, 3, 200)).astype(np.float32)
    product = np.empty((2, 3, 3, 200), np.float32)
    compatibility_product(weight, bottom, product)
    fused = np.empty_like(product)
    compatibility_product(weight, bottom, fused, base=base)
    np.testing.assert_array_equal(fused, base - product)
