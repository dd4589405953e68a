"""LeNet trained from scratch with lenet_solver.prototxt's settings reaches > 0.95 held-out accuracy.

The anchor's lenet_train_test.prototxt is used unchanged except for its two LMDB ``Data`` layers, which
become ``HDF5Data`` layers reading part of the MNIST test set (bytes * 1/256, the Data layer's
``transform_param { scale: 0.00390625 }``): the first 8000 images train, the last 2000 are held out. The
solver keeps base_lr 0.01, momentum 0.9, weight_decay 0.0005 and the inv policy (gamma 1e-4, power 0.75);
only max_iter (300 instead of 10000), the test schedule and snapshots are changed to keep the test short.
"""
import h5py
import numpy as np
import pytest

import crfrnn_np as cn
from crfrnn_np.solver import get_solver

N_TRAIN = 8000


def lenet_with_hdf5(anchor, tmp_path, mnist):
    images, labels = mnist
    for name, sl in (("train", slice(0, N_TRAIN)), ("test", slice(N_TRAIN, None))):
        with h5py.File(tmp_path / (name + ".h5"), "w") as f:
            f["data"] = images[sl].astype(np.float32) * np.float32(0.00390625)
            f["label"] = labels[sl].astype(np.float32)
        (tmp_path / (name + ".txt")).write_text(name + ".h5\n")
    net = cn.proto.read_prototxt(str(anchor("caffe_lenet", "lenet_train_test.prototxt")))
    data_layers = [lp for lp in net.layer if lp.type == "Data"]
    assert len(data_layers) == 2
    for lp in data_layers:
        batch = lp.data_param.batch_size
        phase = lp.include[0].phase
        lp.type = "HDF5Data"
        lp.clear("data_param")
        lp.clear("transform_param")
        p = lp.mutable("hdf5_data_param")
        p.source = str(tmp_path / ("train.txt" if phase == "TRAIN" else "test.txt"))
        p.batch_size = batch
        p.shuffle = phase == "TRAIN"
    return net


@pytest.mark.slow
def test_lenet_learns_from_scratch(anchor, tmp_path, mnist_test_set):
    solver_param = cn.proto.read_prototxt(str(anchor("caffe_lenet", "lenet_solver.prototxt")), "SolverParameter")
    assert (solver_param.base_lr, solver_param.lr_policy) == (np.float32(0.01), "inv")
    solver_param.clear("net")
    solver_param.net_param = lenet_with_hdf5(anchor, tmp_path, mnist_test_set)
    solver_param.max_iter = 300
    solver_param.test_iter = [20]                 # 20 x 100 = the 2000 held-out images
    solver_param.test_interval = 300
    solver_param.test_initialization = False
    solver_param.display = 100
    solver_param.snapshot = 0
    solver_param.snapshot_after_train = False
    solver_param.random_seed = 1701
    lines = []
    solver = get_solver(solver_param, log=lines.append)
    solver.solve()
    assert solver.iter == 300
    assert "Iteration 100, lr = 0.00992565" in lines
    accuracy = solver.test_scores[0]["accuracy"]
    assert accuracy > 0.95, "\n".join(lines)
    assert solver.test_scores[0]["loss"] < 0.2
