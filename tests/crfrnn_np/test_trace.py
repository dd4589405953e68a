"""crfrnn_np.trace without a net: the free energy by hand, the caveats for given parameters, label checks,
choosing the STEPS engine, and the per-iteration rows and HDF5 round trip of a MeanfieldTrace. (The trace
of a real CRF layer against pydensecrf2 is in tests/tools/test_trace.py.)"""
import numpy as np
import pytest

from crfrnn_np import NetError, ShapeError, proto
from crfrnn_np.trace import (DESCRIPTIONS, MeanfieldTrace, check_label, energy_caveats, free_energy,
                             meanfield_layers, use_steps_engine)


def test_free_energy_by_hand():
    q = np.array([[[1.0, 0.25]], [[0.0, 0.75]]])                      # (C=2, H=1, W=2)
    unary = np.array([[[2.0, -1.0]], [[0.5, 3.0]]])
    pairwise = np.array([[[4.0, 0.0]], [[-2.0, 8.0]]])
    entropy = 0.25 * np.log(0.25) + 0.75 * np.log(0.75)              # 0 log 0 = 0 and 1 log 1 = 0
    expected = entropy - (2.0 - 0.25 + 0.75 * 3.0) + 0.5 * (4.0 + 0.75 * 8.0)
    assert free_energy(q, unary, pairwise) == pytest.approx(expected, rel=1e-15)


def test_energy_caveats():
    always = 2
    assert len(energy_caveats(-np.eye(3), -np.eye(3), np.eye(3))) == always        # Potts-like
    reasons = energy_caveats(np.array([[0.0, 1.0], [0.0, 0.0]]), np.eye(2), np.eye(2))
    assert reasons[always:] == ["mu W_s is not symmetric", "mu W_b is not negative semidefinite (not Potts-like)"]


def test_check_label_pads_and_rejects():
    label = np.array([[0, 1], [2, 255]], np.uint8)
    padded = check_label(label, 3, (3, 4), image_shape=(2, 2))
    assert padded.dtype == np.int64 and padded.shape == (3, 4)
    np.testing.assert_array_equal(padded[:2, :2], label)
    assert np.all(padded[2:] == 255) and np.all(padded[:, 2:] == 255)
    np.testing.assert_array_equal(check_label(label[None], 3, (2, 2)), label)      # (1, H, W) is fine
    with pytest.raises(ShapeError, match="2 x 2 .* 3 x 4"):
        check_label(label, 3, (3, 4))
    with pytest.raises(ShapeError, match="outside 0..1 .*: 2"):
        check_label(label, 2, (2, 2))
    with pytest.raises(ShapeError, match="class indices"):
        check_label(label.astype(np.float32), 3, (2, 2))


NET = """name: "n"
layer { name: "in" type: "Input" top: "u" top: "d" input_param { shape { dim: 1 dim: 2 dim: 2 dim: 2 }
                                                              shape { dim: 1 dim: 3 dim: 2 dim: 2 } } }
layer { name: "s" type: "Split" bottom: "u" top: "u1" top: "q0" }
layer { name: "crf" type: "MultiStageMeanfield" bottom: "u1" bottom: "q0" bottom: "d" top: "p"
        multi_stage_meanfield_param { num_iterations: 2 theta_alpha: 1 theta_beta: 1 theta_gamma: 1 } }
"""


def test_use_steps_engine():
    net_param = proto.parse(NET)
    assert meanfield_layers(net_param) == ["crf"]
    assert use_steps_engine(net_param) == "crf"
    assert net_param.layer[2].multi_stage_meanfield_param.engine == "STEPS"
    with pytest.raises(NetError, match="'s' is a Split layer"):
        use_steps_engine(net_param, "s")
    with pytest.raises(NetError, match="no layer 'x'"):
        use_steps_engine(net_param, "x")
    with pytest.raises(NetError, match="no MultiStageMeanfield layer"):
        use_steps_engine(proto.parse('name: "e"'))


def synthetic_trace():
    q = np.zeros((3, 2, 1, 2))                                         # T = 2: Q_0, Q_1, Q_2
    q[0, 0], q[0, 1] = 0.9, 0.1
    q[1, :, 0, 0], q[1, :, 0, 1] = (0.9, 0.1), (0.4, 0.6)              # one label flips at t = 1
    q[2] = q[1]
    arrays = {"Q": q, "energy": np.array([-1.0, -1.5, -1.25]),
              "unary_grad_by_iteration": np.array([[[[3.0, 4.0]]] * 2, [[[0.0, 0.0]]] * 2])}
    return MeanfieldTrace(arrays, {"T": 2, "layer": "crf"})


def test_rows_and_table():
    trace = synthetic_trace()
    rows = trace.rows()
    assert trace.num_iterations == 2 and len(rows) == 3
    assert rows[0][:2] == (0, -1.0) and all(np.isnan(v) for v in (rows[0][2], rows[0][3], rows[0][5]))
    t, energy, delta, change, flips, norm = rows[1]
    assert (t, energy, delta, flips) == (1, -1.5, -0.5, 1)
    assert change == pytest.approx(np.mean(np.abs([0, 0, 0.5, 0.5])))
    assert norm == pytest.approx(np.sqrt(2 * 25.0))
    assert rows[2][2:] == (0.25, 0.0, 0, 0.0)
    assert len(trace.table().splitlines()) == 4


def test_hdf5_round_trip_with_descriptions(tmp_path):
    import h5py
    path = tmp_path / "sub" / "t.h5"
    synthetic_trace().write_hdf5(str(path))
    back = MeanfieldTrace.read_hdf5(str(path))
    np.testing.assert_array_equal(back["Q"], synthetic_trace()["Q"])
    assert back.attrs == {"T": 2, "layer": "crf"} and "energy" in back
    with h5py.File(path, "r") as f:
        assert f["Q"].attrs["description"] == DESCRIPTIONS["Q"]
