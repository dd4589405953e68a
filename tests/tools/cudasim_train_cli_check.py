"""``crfrnn train`` and ``crfrnn test`` with ``--backend cuda`` under the numba.cuda simulator, against the
same commands on the CPU (run by test_train_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1): an HDF5Data
net of InnerProduct, ReLU, Accuracy and SoftmaxWithLoss trained 6 iterations with SGD, snapshotted, then
tested. The snapshots agree to float32 rounding and both test runs print the same accuracy."""
import os
import re
import sys
import tempfile

import h5py
import numpy as np

NET = """name: "blobs"
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TRAIN }
        hdf5_data_param { source: "train.txt" batch_size: 8 } }
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TEST }
        hdf5_data_param { source: "test.txt" batch_size: 10 } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 6 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

SOLVER = """net: "net.prototxt" base_lr: 0.1 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed" display: 3
max_iter: 6 snapshot: 6 snapshot_prefix: "%s/blobs" random_seed: 3
"""


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    import contextlib
    import io
    from crfrnn_np import Net
    from crfrnn_np.cuda_kernel import recording
    from crfrnn_np.testing import assert_declared
    from crfrnn_np.tools.main import main as crfrnn
    work = tempfile.mkdtemp()
    os.chdir(work)
    rng = np.random.default_rng(5)
    centres = np.array([[2, 0, 0, 1, -1], [-2, 1, 0, 0, 1], [0, -2, 2, -1, 0]], np.float32)
    for name, n in (("train", 48), ("test", 10)):
        y = rng.integers(0, 3, n)
        x = centres[y] + 0.5 * rng.standard_normal((n, 5)).astype(np.float32)
        with h5py.File(name + ".h5", "w") as f:
            f["data"], f["label"] = x.astype(np.float32), y.astype(np.float32)
        with open(name + ".txt", "w") as f:
            f.write(name + ".h5\n")
    with open("net.prototxt", "w") as f:
        f.write(NET)
    accuracy, weights = {}, {}
    for backend in ("cpu", "cuda"):
        os.mkdir(backend)
        with open("solver_%s.prototxt" % backend, "w") as f:
            f.write(SOLVER % backend)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), recording() as launches:
            assert crfrnn(["train", "--solver", "solver_%s.prototxt" % backend, "--backend", backend]) == 0
            model = "%s/blobs_iter_6.caffemodel" % backend
            assert crfrnn(["test", "--model", "net.prototxt", "--weights", model, "--iterations", "1",
                           "--backend", backend]) == 0
        text = out.getvalue()
        assert "Optimization Done." in text, text
        accuracy[backend] = float(re.search(r"^accuracy = ([0-9.e+-]+)$", text, re.M).group(1))
        net = Net("net.prototxt", weights=model)
        weights[backend] = [b.data.copy() for b in net.learnable_params]
        names = sorted({name.rsplit(".", 1)[-1] for name, _ in launches})
        assert_declared(launches)
        print("%s: accuracy %.4f, kernels: %s" % (backend, accuracy[backend], " ".join(names) or "none"))
    for a, b in zip(weights["cuda"], weights["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert accuracy["cuda"] == accuracy["cpu"]
    print("cudasim train/test OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
