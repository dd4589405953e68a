"""The gradient checker itself: what it skips and why."""
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_skipping_the_crf_image_is_what_makes_it_pass(rng):
    """Checked explicitly, the CRF image bottom fails: its analytic diff is zero by design, while finite
    differences move the lattice. The skip is a declaration, not a relaxed threshold."""
    from crfrnn_np import Net
    from crfrnn_np.gradcheck import GradientChecker, GradientCheckError
    net = Net(str(ROOT / "models" / "demo.prototxt"), phase="TRAIN", dtype="float64")
    for name in net.inputs:
        net.blobs[name].data = rng.standard_normal(net.blobs[name].shape)
    net.forward_prefilled()
    i = net.layer_names.index("inference1")
    layer, bottom, top = net.layers[i], net.bottom_vecs[i], net.top_vecs[i]
    checker = GradientChecker(1e-5, 1e-6)
    assert [s[0] for s in checker.skipped_bottoms(layer, bottom)] == [2]
    assert checker.check_gradient_directional(layer, bottom, top, n_directions=1) < 1e-6
    with pytest.raises(GradientCheckError):
        checker.check_gradient_directional(layer, bottom, top, check_bottom=2, n_directions=1)
