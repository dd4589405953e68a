"""``crfrnn train`` then ``crfrnn test`` on an HDF5Data net, through the command line's ``main()``;
resuming with ``--snapshot``; the stop-and-snapshot request that Ctrl-C makes."""
import os
import re
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from crfrnn_np.solver import get_solver
from crfrnn_np.tools.main import main

NET = """
name: "blobs"
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TRAIN }
        hdf5_data_param { source: "train.txt" batch_size: 16 shuffle: true } }
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TEST }
        hdf5_data_param { source: "test.txt" batch_size: 25 } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 16 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
        include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

SOLVER = """net: "net.prototxt"
test_iter: 4
test_interval: 30
base_lr: 0.05
momentum: 0.9
weight_decay: 0.0005
lr_policy: "fixed"
display: 10
max_iter: 60
snapshot: 30
snapshot_prefix: "snap/blobs"
random_seed: 3
"""


def blobs(rng, n):
    """Three Gaussian clusters in 5-D: an easy classification problem."""
    centres = np.array([[2, 0, 0, 1, -1], [-2, 1, 0, 0, 1], [0, -2, 2, -1, 0]], np.float32)
    y = rng.integers(0, 3, n)
    x = centres[y] + 0.5 * rng.standard_normal((n, 5)).astype(np.float32)
    return x.astype(np.float32), y.astype(np.float32)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    for name, n in (("train", 200), ("test", 100)):
        x, y = blobs(rng, n)
        with h5py.File(tmp_path / (name + ".h5"), "w") as f:
            f["data"], f["label"] = x, y
        (tmp_path / (name + ".txt")).write_text(name + ".h5\n")
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    (tmp_path / "snap").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_train_then_test(workdir, capsys):
    assert main(["train", "--solver", "solver.prototxt"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "Iteration 0, Testing net (#0)" in lines
    assert "Iteration 60, Testing net (#0)" in lines
    assert re.search(r"^Iteration 10 \([0-9.e+-]+ iter/s, [0-9.e+-]+s/10 iters\), loss = [0-9.e+-]+$", out, re.M)
    assert "Iteration 10, lr = 0.05" in lines
    assert re.search(r"^    Train net output #0: loss = [0-9.e+-]+ \(\* 1 = [0-9.e+-]+ loss\)$", out, re.M)
    final_acc = re.findall(r"^    Test net output #0: accuracy = ([0-9.e+-]+)$", out, re.M)
    assert len(final_acc) == 3 and float(final_acc[-1]) > 0.9
    assert lines[-1] == "Optimization Done."
    assert "progress" in err
    for it in (30, 60):
        assert (workdir / "snap" / ("blobs_iter_%d.caffemodel" % it)).is_file()
        assert (workdir / "snap" / ("blobs_iter_%d.solverstate" % it)).is_file()

    assert main(["test", "--model", "net.prototxt", "--weights", "snap/blobs_iter_60.caffemodel",
                 "--iterations", "4"]) == 0
    out, _ = capsys.readouterr()
    assert re.search(r"^Batch 3, accuracy = [0-9.e+-]+$", out, re.M)
    acc = float(re.search(r"^accuracy = ([0-9.e+-]+)$", out, re.M).group(1))
    loss = float(re.search(r"^loss = ([0-9.e+-]+) \(\* 1 = [0-9.e+-]+ loss\)$", out, re.M).group(1))
    assert float(re.search(r"^Loss: ([0-9.e+-]+)$", out, re.M).group(1)) == pytest.approx(loss, rel=1e-5)
    assert acc == pytest.approx(float(final_acc[-1]), abs=1e-6)   # same weights, same 100 test images

    # resume from the iteration-30 state: same final weights as the uninterrupted run
    with open("snap/blobs_iter_60.caffemodel", "rb") as f:
        uninterrupted = f.read()
    assert main(["train", "--solver", "solver.prototxt", "--snapshot", "snap/blobs_iter_30.solverstate"]) == 0
    out, _ = capsys.readouterr()
    assert "Iteration 30, Testing net (#0)" in out.splitlines()
    with open("snap/blobs_iter_60.caffemodel", "rb") as f:
        assert f.read() == uninterrupted


def test_cli_errors(workdir, capsys):
    assert main(["train", "--solver", "missing.prototxt"]) == 1
    assert "crfrnn: error: solver file 'missing.prototxt' not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--solver", "solver.prototxt", "--weights", "a", "--snapshot", "b"])
    assert main(["test", "--model", "net.prototxt", "--weights", "nope.caffemodel"]) == 1
    assert "crfrnn: error:" in capsys.readouterr().err


def test_stop_request_snapshots_and_stops(workdir):
    solver = get_solver("solver.prototxt", log=lambda s: None)
    solver.add_callback(lambda s: s.iter == 7 and s.request("snapshot_stop"))
    solver.solve()
    assert solver.iter == 8 and solver.requested_early_exit
    assert (workdir / "snap" / "blobs_iter_8.solverstate").is_file()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_snapshots_before_exit(workdir):
    (workdir / "solver.prototxt").write_text(SOLVER.replace("max_iter: 60", "max_iter: 100000")
                                             .replace("snapshot: 30", "snapshot: 0")
                                             .replace("test_interval: 30", "test_interval: 0"))
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "crfrnn_np.tools.main", "train", "--solver", "solver.prototxt"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:
            if line.startswith("Iteration 20 ("):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    states = sorted((workdir / "snap").glob("blobs_iter_*.solverstate"))
    assert len(states) == 1 and "Optimization stopped early." in out
    n = int(re.search(r"_iter_(\d+)\.solverstate$", str(states[0])).group(1))
    assert 20 <= n < 100000
    assert (workdir / "snap" / ("blobs_iter_%d.caffemodel" % n)).is_file()
