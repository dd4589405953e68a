"""``crfrnn trace``: the recorded iterations against independent references.

* Q_t against pydensecrf2's ``inference(t)`` for every t (spec crfasrnn.md §3.8 recipe), and the free energy
  against pydensecrf's ``klDivergence``, which is Σ Q log Q − Σ Q U + Σ Q Φ (no ½, no log Z): so
  F = (klDivergence + Σ Q log Q − Σ Q U) / 2.
* The logits against the net's own top (FUSED engine), the unary gradient against the net's own backward
  of a SoftmaxWithLoss written here in NumPy, the per-iteration parts summing to it, and the per-iteration
  parameter gradients summing to the net's parameter diffs.
"""
import h5py
import numpy as np
import pytest

from crfrnn_np import Net, proto
from crfrnn_np.tools.main import main

C, H, W, T = 4, 24, 20, 6
THETA_ALPHA, THETA_BETA, THETA_GAMMA = 12.0, 20.0, 2.5
NET = """name: "traced"
layer { name: "input" type: "Input" top: "scores" top: "data"
        input_param { shape { dim: 1 dim: %d dim: %d dim: %d } shape { dim: 1 dim: 3 dim: %d dim: %d } } }
layer { name: "splitting" type: "Split" bottom: "scores" top: "unary" top: "Q0" }
layer { name: "crf" type: "MultiStageMeanfield" bottom: "unary" bottom: "Q0" bottom: "data" top: "pred"
        multi_stage_meanfield_param { num_iterations: %d theta_alpha: %g theta_beta: %g theta_gamma: %g } }
""" % (C, H, W, H, W, T, THETA_ALPHA, THETA_BETA, THETA_GAMMA)


@pytest.fixture
def case(tmp_path, rng):
    """A net, its inputs as .npy files and a label with an ignored band."""
    scores = (2.0 * rng.standard_normal((1, C, H, W))).astype(np.float32)
    image = rng.uniform(-100.0, 120.0, (1, 3, H, W)).astype(np.float32)
    label = rng.integers(0, C, (H, W))
    label[:3] = 255
    paths = {"model": tmp_path / "net.prototxt", "scores": tmp_path / "scores.npy", "data": tmp_path / "data.npy",
             "label": tmp_path / "label.npy", "out": tmp_path / "trace.h5"}
    paths["model"].write_text(NET)
    np.save(paths["scores"], scores)
    np.save(paths["data"], image)
    np.save(paths["label"], label)
    return paths, scores, image, label


def run_trace(paths, *extra):
    return main(["trace", "--model", str(paths["model"]), "--input", "scores=%s" % paths["scores"],
                 "--input", "data=%s" % paths["data"], "--output", str(paths["out"])] + list(extra))


def densecrf(scores, image):
    dcrf = pytest.importorskip("pydensecrf.densecrf")
    crf = dcrf.DenseCRF(H * W, C)
    crf.setUnaryEnergy(np.ascontiguousarray(-scores[0].reshape(C, -1), dtype=np.float32))
    ys, xs = np.mgrid[:H, :W]
    spatial = np.stack([xs.ravel() / THETA_GAMMA, ys.ravel() / THETA_GAMMA])
    bilateral = np.concatenate([np.stack([xs.ravel() / THETA_ALPHA, ys.ravel() / THETA_ALPHA]),
                                image[0].reshape(3, -1) / np.float32(THETA_BETA)])
    for feats, weight in ((spatial, 3.0), (bilateral, 5.0)):
        crf.addPairwiseEnergy(np.ascontiguousarray(feats, dtype=np.float32), compat=weight, kernel=dcrf.DIAG_KERNEL,
                              normalization=dcrf.NORMALIZE_AFTER)
    return crf


def test_every_iteration_matches_pydensecrf(case, capsys):
    paths, scores, image, _ = case
    assert run_trace(paths) == 0
    table = capsys.readouterr().out
    assert len([line for line in table.splitlines() if line.split() and line.split()[0].isdigit()]) == T + 1
    crf = densecrf(scores, image)
    u = scores[0].reshape(C, -1).astype(np.float64)
    with h5py.File(paths["out"], "r") as f:
        assert f.attrs["T"] == T and f.attrs["engine"] == "STEPS"
        assert not f.attrs["energy_decrease_guaranteed"]
        assert "normalised filter" in f.attrs["energy_caveats"]
        q, energy = f["Q"][()], f["energy"][()]
        assert q.shape == (T + 1, C, H, W) and energy.shape == (T + 1,)
        for name in ("spatial", "bilateral", "pairwise", "logits"):
            assert f[name].shape == (T, C, H, W)
    for t in range(T + 1):
        marginals = crf.inference(t)
        expected = np.array(marginals, dtype=np.float64)
        np.testing.assert_allclose(q[t].reshape(C, -1), expected, rtol=0, atol=5e-6, err_msg="t = %d" % t)
        entropy = float(np.sum(expected * np.log(np.maximum(expected, 1e-20))))
        from_pydensecrf = 0.5 * (crf.klDivergence(marginals) + entropy - float(np.sum(expected * u)))
        assert energy[t] == pytest.approx(from_pydensecrf, rel=1e-6, abs=1e-3)
    assert energy[-1] < energy[0]


def softmax_loss(top, label):
    """SoftmaxWithLoss (VALID, ignore 255) and its gradient, in NumPy."""
    z = top.astype(np.float64)
    p = np.exp(z - z.max(axis=0))
    p /= p.sum(axis=0)
    valid = label != 255
    idx = np.where(valid, label, 0)
    logp = np.log(np.take_along_axis(p, idx[None], 0)[0])
    count = valid.sum()
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, idx[None], 1.0, 0)
    return -logp[valid].sum() / count, (p - onehot) * valid / count


@pytest.mark.parametrize("dtype, atol", [("float64", 1e-9), ("float32", 2e-5)])
def test_logits_and_gradients_against_the_net(case, rng, tmp_path, dtype, atol):
    """Generic trained-looking parameters through --weights; the trace (STEPS) against the net (DEFAULT)."""
    paths, scores, image, label = case
    param = proto.parse(NET)
    param.force_backward = True                       # no loss layer: ask for the input diffs
    net = Net(param, phase="TRAIN", dtype=dtype)
    for blob in net.params["crf"]:
        blob.data[0, 0] += 0.3 * rng.standard_normal((C, C))
    weights = tmp_path / "crf.caffemodel"
    net.save(str(weights))
    assert run_trace(paths, "--label", str(paths["label"]), "--weights", str(weights), "--dtype", dtype) == 0
    with h5py.File(paths["out"], "r") as f:
        trace = {name: f[name][()].astype(np.float64) for name in f}
        loss = f.attrs["loss"]
    assert net.layer_dict["crf"].engine == "FUSED"
    top = net.forward(scores=scores, data=image)["pred"][0].astype(np.float64)
    np.testing.assert_allclose(trace["logits"][-1], top, rtol=0, atol=atol * np.abs(top).max())
    expected_loss, grad = softmax_loss(top, label)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    net.clear_param_diffs()
    diffs = net.backward(pred=grad[None])
    # the net's input 'scores' feeds both unary and Q0; the trace's unary_grad is the unary part alone, and
    # the Q0 part enters through the first softmax only: their sum is the net's diff
    crf = net.layer_dict["crf"]
    i = net.layer_names.index("crf")
    unary_diff = net.bottom_vecs[i][0].diff[0].astype(np.float64)
    scale = np.abs(unary_diff).max()
    np.testing.assert_allclose(trace["unary_grad"], unary_diff, rtol=0, atol=atol * scale)
    np.testing.assert_allclose(trace["unary_grad_by_iteration"].sum(axis=0), trace["unary_grad"], rtol=0,
                               atol=atol * scale)
    assert diffs["scores"].shape == (1, C, H, W)
    for k, key in enumerate(("W_s_grad", "W_b_grad", "mu_grad")):
        expected = crf.blobs[k].diff[0, 0].astype(np.float64)
        np.testing.assert_allclose(trace[key].sum(axis=0), expected, rtol=0, atol=atol * np.abs(expected).max())


def test_panels_and_csv(case, tmp_path, capsys):
    paths, _, _, _ = case
    panels = tmp_path / "panels"
    assert run_trace(paths, "--label", str(paths["label"]), "--panels", str(panels)) == 0
    for name in ("overview.png", "q_argmax.png", "q_maxprob.png", "q_change.png", "energy.png", "grad_norm.png"):
        with open(panels / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
    rows = (panels / "trace.csv").read_text().splitlines()
    assert rows[0] == "t,energy,delta_energy,mean_abs_dq,flips,grad_norm" and len(rows) == T + 2


def test_panels_without_matplotlib(case, tmp_path, capsys, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("no matplotlib here")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    paths, _, _, _ = case
    panels = tmp_path / "panels"
    assert run_trace(paths, "--panels", str(panels)) == 0
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert sorted(p.name for p in panels.iterdir()) == ["trace.csv"]


def test_demo_net_with_image_and_png_label(tmp_path, capsys):
    """The shipped demo net: --image for the picture, --input for the coarse scores, a palette PNG label."""
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[2] / "models"
    out = tmp_path / "demo.h5"
    assert main(["trace", "--model", str(root / "demo.prototxt"), "--image", str(root / "demo" / "image.png"),
                 "--input", "coarse=%s" % (root / "demo" / "coarse_unary.npy"), "--label",
                 str(root / "demo" / "mask.png"), "--output", str(out)]) == 0
    with h5py.File(out, "r") as f:
        q = f["Q"][()]
        label = f["label"][()]
        assert f["image"].shape == (160, 200, 3)
    assert np.mean(q[-1].argmax(axis=0) == label) > 0.99           # the demo's CRF result is near perfect
    assert np.mean(q[0].argmax(axis=0) == label) < 0.96


@pytest.mark.parametrize("args, needle", [
    (["--input", "nothere=X"], "'nothere' is not an input"),
    (["--input", "scores"], "BLOB=FILE"),
    (["--label", "BADSIZE"], "the label is 5 x 7"),
    (["--label", "BADCLASS"], "classes outside 0..3"),
    (["--layer", "splitting"], "is a Split layer, not a MultiStageMeanfield"),
    (["--layer", "nolayer"], "has no layer 'nolayer'"),
])
def test_bad_input_is_one_line(case, tmp_path, capsys, args, needle):
    paths, _, _, label = case
    np.save(tmp_path / "small.npy", np.zeros((5, 7), np.int64))
    bad = label.copy()
    bad[5, 5] = 9
    np.save(tmp_path / "badclass.npy", bad)
    args = [a.replace("BADSIZE", str(tmp_path / "small.npy")).replace("BADCLASS", str(tmp_path / "badclass.npy"))
            .replace("X", str(paths["scores"])) for a in args]
    assert run_trace(paths, *args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("crfrnn: error:") and needle in err[0], err
    assert not paths["out"].exists()


def test_input_shape_mismatch_and_missing_input(case, tmp_path, capsys):
    paths, _, _, _ = case
    np.save(tmp_path / "wrong.npy", np.zeros((1, C, H, W + 1), np.float32))
    assert main(["trace", "--model", str(paths["model"]), "--input", "scores=%s" % (tmp_path / "wrong.npy"),
                 "--input", "data=%s" % paths["data"], "--output", str(paths["out"])]) == 1
    assert "has shape 1x4x24x21, input 'scores' has shape 1x4x24x20" in capsys.readouterr().err
    assert main(["trace", "--model", str(paths["model"]), "--input", "data=%s" % paths["data"],
                 "--output", str(paths["out"])]) == 1
    assert "needs data for input(s) scores" in capsys.readouterr().err


def test_net_without_a_crf_layer_and_unknown_engine(tmp_path, capsys):
    plain = tmp_path / "plain.prototxt"
    plain.write_text('layer { name: "input" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }\n'
                     'layer { name: "prob" type: "Softmax" bottom: "x" top: "p" }\n')
    assert main(["trace", "--model", str(plain), "--output", str(tmp_path / "t.h5")]) == 1
    assert "has no MultiStageMeanfield layer" in capsys.readouterr().err
    bad = tmp_path / "bad.prototxt"
    bad.write_text(NET.replace("theta_gamma: 2.5", "theta_gamma: 2.5 engine: FASTEST"))
    assert main(["trace", "--model", str(bad), "--output", str(tmp_path / "t.h5")]) == 1
    err = capsys.readouterr().err
    assert "FASTEST" in err and "bad.prototxt:6:" in err and "one of DEFAULT, STEPS, FUSED" in err


def test_trace_file_is_replaced_atomically(case, capsys):
    """A failed run leaves the previous trace as it was; a good run replaces it whole."""
    paths, _, _, _ = case
    assert run_trace(paths) == 0
    before = paths["out"].read_bytes()
    assert run_trace(paths, "--layer", "nolayer") == 1
    assert paths["out"].read_bytes() == before
    assert [p.name for p in paths["out"].parent.iterdir() if p.name.startswith(".")] == []
