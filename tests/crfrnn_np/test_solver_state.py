"""Snapshots: file names and formats, snapshot -> restore -> continue == uninterrupted (bit for bit), and the
published Caffe solverstates (CIFAR-10 quick, binary protobuf and HDF5) restore."""
import h5py
import numpy as np
import pytest

import crfrnn_np as cn
from crfrnn_np import SolverError
from crfrnn_np.solver import get_solver

NET = """
name: "mlp"
layer { name: "data" type: "HDF5Data" top: "data" top: "label"
        hdf5_data_param { source: "%(dir)s/list.txt" batch_size: 5 shuffle: true } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 8 weight_filler { type: "gaussian" std: 0.3 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "drop" type: "Dropout" bottom: "ip1" top: "ip1" dropout_param { dropout_ratio: 0.3 } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


@pytest.fixture
def mlp_dir(tmp_path):
    rng = np.random.default_rng(0)
    names = []
    for k, n in enumerate((7, 6)):          # row counts that are not multiples of the batch size
        with h5py.File(tmp_path / ("p%d.h5" % k), "w") as f:
            f["data"] = rng.standard_normal((n, 4)).astype(np.float32)
            f["label"] = rng.integers(0, 3, n).astype(np.float32)
        names.append("p%d.h5" % k)
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "net.prototxt").write_text(NET % {"dir": tmp_path})
    return tmp_path


def write_solver(d, type_="SGD", fmt="BINARYPROTO", extra=""):
    text = ('net: "net.prototxt"\ntype: "%s"\nbase_lr: 0.05\nlr_policy: "step"\ngamma: 0.5\nstepsize: 3\n'
            'momentum: 0.9\nweight_decay: 0.001\nmax_iter: 10\nsnapshot: 4\nsnapshot_format: %s\n'
            'snapshot_prefix: "%s/snap/mlp"\nrandom_seed: 7\n%s' % (type_, fmt, d, extra))
    (d / "snap").mkdir(exist_ok=True)
    path = d / ("solver_%s_%s.prototxt" % (type_, fmt))
    path.write_text(text)
    return str(path)


def params(solver):
    return [b.data.copy() for b in solver.net.learnable_params]


@pytest.mark.parametrize("type_,fmt", [("SGD", "BINARYPROTO"), ("Adam", "HDF5"), ("AdaDelta", "BINARYPROTO")])
def test_resume_is_exact(mlp_dir, type_, fmt):
    quiet = dict(log=lambda s: None)
    path = write_solver(mlp_dir, type_, fmt, 'momentum2: 0.99\n' if type_ == "Adam" else "")
    full = get_solver(path, **quiet)
    full.step(10)
    expected = params(full)
    expected_hist = [h.copy() for h in full.history]

    first = get_solver(path, **quiet)
    first.step(4)                                   # snapshot: 4 writes _iter_4 here
    ext = ".h5" if fmt == "HDF5" else ""
    state = mlp_dir / "snap" / ("mlp_iter_4.solverstate" + ext)
    model = mlp_dir / "snap" / ("mlp_iter_4.caffemodel" + ext)
    assert state.is_file() and model.is_file()
    assert not list((mlp_dir / "snap").glob(".*tmp*"))   # no temporary files left behind

    cn.random.set_seed(12345)                       # a different stream: the restore must bring it back
    resumed = get_solver(path, **quiet)
    cn.random.rng().random(17)
    resumed.restore(str(state))
    assert resumed.iter == 4
    resumed.step(6)
    assert resumed.iter == 10
    for a, b in zip(expected, params(resumed)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(expected_hist, resumed.history):
        np.testing.assert_array_equal(a, b)
    # the uninterrupted run really moved the weights, so equality is not trivial
    assert not np.array_equal(expected[0], first.net.learnable_params[0].data)


def test_snapshot_files_and_history_layout(mlp_dir):
    path = write_solver(mlp_dir, "Adam", "HDF5")
    solver = get_solver(path, log=lambda s: None)
    solver.step(4)
    with h5py.File(mlp_dir / "snap" / "mlp_iter_4.solverstate.h5", "r") as f:
        assert f["iter"][()].tolist() == [4] and f["current_step"][()].tolist() == [1]
        assert f["learned_net"][()].decode().endswith("mlp_iter_4.caffemodel.h5")
        assert len(f["history"]) == 2 * len(solver.net.learnable_params)      # all m, then all v
        np.testing.assert_array_equal(f["history"]["0"][()], solver.history[0])
        np.testing.assert_array_equal(f["history"]["4"][()], solver.history[4])
    with h5py.File(mlp_dir / "snap" / "mlp_iter_4.caffemodel.h5", "r") as f:
        np.testing.assert_array_equal(f["data"]["ip1"]["0"][()], solver.net.params["ip1"][0].data)


def test_binaryproto_solverstate_fields(mlp_dir):
    path = write_solver(mlp_dir, "SGD", "BINARYPROTO")
    solver = get_solver(path, log=lambda s: None)
    solver.step(4)
    data = (mlp_dir / "snap" / "mlp_iter_4.solverstate").read_bytes()
    state = cn.proto.decode(data, "SolverState")
    assert state.iter == 4 and state.current_step == 1
    assert state.learned_net.endswith("mlp_iter_4.caffemodel")
    assert len(state.history) == 4
    np.testing.assert_array_equal(np.asarray(state.history[2].data).reshape(solver.history[2].shape),
                                  solver.history[2])


def test_history_count_mismatch_is_an_error(mlp_dir):
    path = write_solver(mlp_dir, "Adam", "BINARYPROTO")
    get_solver(path, log=lambda s: None).step(4)
    sgd = get_solver(write_solver(mlp_dir, "SGD", "HDF5"), log=lambda s: None)
    with pytest.raises(SolverError, match="8 history blobs.*needs 4"):
        sgd.restore(str(mlp_dir / "snap" / "mlp_iter_4.solverstate"))


def test_restore_from_the_sidecar_names_the_state_file(mlp_dir):
    path = write_solver(mlp_dir, "SGD", "BINARYPROTO")
    solver = get_solver(path, log=lambda s: None)
    solver.step(4)
    sidecar = mlp_dir / "snap" / "mlp_iter_4.solverstate.resume"
    assert sidecar.exists()
    with pytest.raises(SolverError, match=r"sidecar.*pass the solver state itself, '.*mlp_iter_4\.solverstate'"):
        solver.restore(str(sidecar))


def cifar_solver(anchor):
    deploy = anchor("caffe_cifar10_quick", "cifar10_quick.prototxt")
    text = 'net: "%s"\nbase_lr: 0.001\nmomentum: 0.9\nweight_decay: 0.004\nlr_policy: "fixed"\n' % deploy
    return get_solver(cn.proto.parse(text, "SolverParameter"), log=lambda s: None)


def test_published_binaryproto_solverstate_restores(anchor):
    state_path = anchor("caffe_cifar10_quick", "cifar10_quick_iter_4000.solverstate")
    model_path = anchor("caffe_cifar10_quick", "cifar10_quick_iter_4000.caffemodel")
    solver = cifar_solver(anchor)
    solver.restore(str(state_path))
    assert solver.iter == 4000 and solver.current_step == 0
    state = cn.proto.decode(state_path.read_bytes(), "SolverState")
    assert state.learned_net == "examples/cifar10/cifar10_quick_iter_4000.caffemodel"
    assert len(solver.history) == 10
    shapes = [(32, 3, 5, 5), (32,), (32, 32, 5, 5), (32,), (64, 32, 5, 5), (64,), (64, 1024), (64,), (10, 64), (10,)]
    assert [h.shape for h in solver.history] == shapes
    for h, bp in zip(solver.history, state.history):
        np.testing.assert_array_equal(h.reshape(-1), np.asarray(bp.data, dtype=np.float32))
    assert all(np.abs(h).max() > 0 for h in solver.history)
    # learned_net (a path relative to Caffe's root) was found next to the state and loaded
    ref = cn.Net(str(anchor("caffe_cifar10_quick", "cifar10_quick.prototxt")), weights=str(model_path))
    for name in ("conv1", "ip2"):
        np.testing.assert_array_equal(solver.net.params[name][0].data, ref.params[name][0].data)


def test_published_hdf5_solverstate_restores(anchor):
    state_path = anchor("caffe_cifar10_quick", "cifar10_quick_iter_5000.solverstate.h5")
    solver = cifar_solver(anchor)
    solver.restore(str(state_path))
    assert solver.iter == 5000 and solver.current_step == 0
    with h5py.File(state_path, "r") as f:
        for i, h in enumerate(solver.history):
            np.testing.assert_array_equal(h, f["history"][str(i)][()])
    with h5py.File(anchor("caffe_cifar10_quick", "cifar10_quick_iter_5000.caffemodel.h5"), "r") as f:
        np.testing.assert_array_equal(solver.net.params["conv3"][0].data, f["data"]["conv3"]["0"][()])
    # the restored solver keeps training from there
    solver.net.blobs["data"].data[...] = 0.5
    solver.step(1)
    assert solver.iter == 5001
