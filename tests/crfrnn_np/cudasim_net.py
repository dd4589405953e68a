"""Under the numba.cuda simulator: a small net whose every layer runs on the device, against the same net on
the CPU, and the host <-> device transfers of one forward and one backward (run by test_blob_cuda.py and the
device code's test modules in subprocesses with NUMBA_ENABLE_CUDASIM=1, set before numba is imported)."""
import contextlib
import os
import re
import sys

import numpy as np

NET = """name: "small" force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "tanh" type: "TanH" bottom: "x" top: "t" }
layer { name: "relu" type: "ReLU" bottom: "t" top: "t" relu_param { negative_slope: 0.1 } }
layer { name: "sig" type: "Sigmoid" bottom: "t" top: "s" }
layer { name: "sum" type: "Eltwise" bottom: "t" bottom: "s" top: "e"
        eltwise_param { operation: SUM coeff: 2 coeff: -0.5 } }
layer { name: "unary" type: "UnaryAdd" bottom: "e" bottom: "s" top: "u" }
layer { name: "relu2" type: "ReLU" bottom: "u" top: "y" }"""
#: A mean-field step without the filters: Q = Softmax(x), L = x - W Q.
STEP_NET = """name: "step" force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "q" type: "Softmax" bottom: "x" top: "q" }
layer { name: "w" type: "Compatibility" bottom: "q" top: "m"
        compatibility_param { weight_filler { type: "gaussian" std: 1 } } }
layer { name: "l" type: "UnaryAdd" bottom: "x" bottom: "m" top: "y" }"""
#: The two normalised filters of a mean-field iteration and their sum: Q = Softmax(x), M = K_s Q + K_b Q (the
#: image is the second input, fed the same array on both backends).
FILTER_NET = """name: "filters" force_backward: true
layer { name: "in" type: "Input" top: "x" top: "image" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 }
        shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "q" type: "Softmax" bottom: "x" top: "q" }
layer { name: "spatial" type: "PermutohedralFilter" bottom: "q" bottom: "image" top: "s"
        permutohedral_param { kernel: SPATIAL theta_gamma: 2 } }
layer { name: "bilateral" type: "PermutohedralFilter" bottom: "q" bottom: "image" top: "b"
        permutohedral_param { kernel: BILATERAL theta_alpha: 4 theta_beta: 30 } }
layer { name: "sum" type: "Eltwise" bottom: "s" bottom: "b" top: "y" eltwise_param { coeff: 3 coeff: 5 } }"""
#: The published CRF layer (STEPS engine on the device: every step layer above), T = 2, 3 classes.
CRF_NET = """name: "crf" force_backward: true
layer { name: "in" type: "Input" top: "x" top: "image" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 }
        shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "crf" type: "MultiStageMeanfield" bottom: "x" bottom: "x" bottom: "image" top: "y"
        multi_stage_meanfield_param { num_iterations: 2 theta_alpha: 4 theta_beta: 30 theta_gamma: 2
        engine: STEPS } }"""
#: The FCN layers: convolutions (bias, group, dilation), MAX and AVE pooling, a strided deconvolution.
FCN_NET = """name: "fcn" force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "c1" type: "Convolution" bottom: "x" top: "c1" convolution_param { num_output: 4 kernel_size: 3
        pad: 1 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2" convolution_param { num_output: 4 kernel_size: 3
        pad: 2 dilation: 2 group: 2 weight_filler { type: "gaussian" std: 0.5 } bias_term: false } }
layer { name: "r" type: "ReLU" bottom: "c2" top: "c2" }
layer { name: "p" type: "Pooling" bottom: "c2" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "d" type: "Deconvolution" bottom: "p" top: "d" convolution_param { num_output: 3 kernel_size: 4
        stride: 2 pad: 1 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 1 } } }
layer { name: "a" type: "Pooling" bottom: "d" top: "y" pooling_param { pool: AVE kernel_size: 3 stride: 1
        pad: 1 } }"""
#: Crop (axis 2 and axis 1 with offsets), Concat and Dropout (TEST).
COPY_NET = """name: "copy" force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "crop" type: "Crop" bottom: "x" bottom: "x" top: "c" crop_param { axis: 2 offset: 0 } }
layer { name: "cat" type: "Concat" bottom: "c" bottom: "x" top: "k" }
layer { name: "drop" type: "Dropout" bottom: "k" top: "k" }
layer { name: "crop2" type: "Crop" bottom: "k" bottom: "x" top: "y" crop_param { axis: 1 offset: 2 offset: 0
        offset: 0 } }"""
#: Flatten, InnerProduct (plain and transposed weights) and Reshape.
IP_NET = """name: "ip" force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "flat" type: "Flatten" bottom: "x" top: "f" }
layer { name: "ip" type: "InnerProduct" bottom: "f" top: "i" inner_product_param { num_output: 12
        weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "gaussian" std: 1 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "i" top: "j" inner_product_param { num_output: 48
        transpose: true weight_filler { type: "gaussian" std: 0.3 } bias_term: false } }
layer { name: "shape" type: "Reshape" bottom: "j" top: "y" reshape_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }"""
#: Pooling: MAX with padding and overlapping windows, then AVE with padding.
POOL_NET = """name: "pool" force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "max" type: "Pooling" bottom: "x" top: "p" pooling_param { pool: MAX kernel_size: 3 stride: 2
        pad: 1 } }
layer { name: "ave" type: "Pooling" bottom: "p" top: "y" pooling_param { pool: AVE kernel_size: 3 stride: 1
        pad: 1 } }"""
#: Layer types of each net (the automatic Splits included): every one runs on the device.
DEVICE_TYPES = {"small": ("TanH", "ReLU", "Sigmoid", "Split", "Eltwise", "UnaryAdd"),
                "step": ("Softmax", "Compatibility", "Split", "UnaryAdd"),
                "filters": ("Softmax", "Split", "PermutohedralFilter", "Eltwise"),
                "crf": ("Split", "MultiStageMeanfield"),
                "fcn": ("Convolution", "ReLU", "Pooling", "Deconvolution"),
                "copy": ("Split", "Crop", "Concat", "Dropout"), "ip": ("Flatten", "InnerProduct", "Reshape"),
                "pool": ("Pooling",),
                "eltwise": ("TanH", "Sigmoid", "Split", "Eltwise")}


@contextlib.contextmanager
def counting_transfers():
    """Count every host -> device and device -> host copy of device arrays: ``{"to_device": n, "to_host": n}``.

    Under the simulator the fake arrays' copy methods and ``cuda.to_device`` are counted; on a real GPU the
    device arrays' ``copy_to_host`` and ``copy_to_device`` (which ``cuda.to_device`` calls itself)."""
    from numba import cuda
    simulator = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    if simulator:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as array_class
    else:
        from numba.cuda.cudadrv.devicearray import DeviceNDArray as array_class
    counts = {"to_device": 0, "to_host": 0}
    saved = array_class.copy_to_host, array_class.copy_to_device, cuda.to_device

    def to_host(self, *args, **kwargs):
        counts["to_host"] += 1
        return saved[0](self, *args, **kwargs)

    def to_device_method(self, *args, **kwargs):
        counts["to_device"] += 1
        return saved[1](self, *args, **kwargs)

    def to_device(*args, **kwargs):
        counts["to_device"] += 1
        return saved[2](*args, **kwargs)

    array_class.copy_to_host, array_class.copy_to_device = to_host, to_device_method
    if simulator:
        cuda.to_device = to_device
    try:
        yield counts
    finally:
        array_class.copy_to_host, array_class.copy_to_device, cuda.to_device = saved


@contextlib.contextmanager
def counting_allocations():
    """Count ``numba.cuda.device_array`` calls (every device allocation of the project goes through it):
    ``[n]``."""
    from numba import cuda
    made = [0]
    saved = cuda.device_array

    def device_array(*args, **kwargs):
        made[0] += 1
        return saved(*args, **kwargs)

    cuda.device_array = device_array
    try:
        yield made
    finally:
        cuda.device_array = saved


def run_small_net(dtype, text=NET):
    """Forward and backward of ``text`` on cuda and cpu (the same parameters); asserts that outputs, input
    diffs and parameter diffs agree; returns the transfer counts of the first and second cuda forwards and of
    the backward."""
    from crfrnn_np import Net, proto
    rng = np.random.default_rng(11)
    shape = tuple(int(d) for d in re.search(r"shape \{ dim: (\d+) dim: (\d+) dim: (\d+) dim: (\d+) \}", text).groups())
    x = rng.standard_normal(shape).astype(dtype)
    g = None
    feed = {"x": x}
    if "image" in text:
        feed["image"] = rng.uniform(-100, 100, shape).astype(dtype)
    results = {}
    params = None
    for backend in ("cpu", "cuda"):
        net = Net(proto.parse(text), dtype=dtype, backend=backend)
        types = sorted({layer.type for layer in net.layers} - {"Input"})
        assert types == sorted(DEVICE_TYPES[net.name]), types
        if params is None:
            params = {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}
        for name, blobs in net.params.items():
            for blob, value in zip(blobs, params[name]):
                blob.data[...] = value
        net.params_to_device()                          # the host writes above made the host copies newer
        if backend == "cuda":
            with counting_transfers() as forward_counts:         # the first forward: buffers made, lattices
                net.forward(**feed)                              # built (the spatial one at set-up)
            with counting_transfers() as again_counts, counting_allocations() as made:
                out = net.forward(**feed)["y"].copy()
            # buffers are made once per shape: a second forward (new lattices included) allocates nothing
            assert made[0] == 0, ("device allocations in a second forward", net.name, made[0])
            g = np.random.default_rng(13).standard_normal(out.shape).astype(dtype) if g is None else g
            with counting_transfers() as backward_counts:
                dx = net.backward(y=g)["x"].copy()
        else:
            net.forward(**feed)
            out = net.forward(**feed)["y"].copy()
            g = np.random.default_rng(13).standard_normal(out.shape).astype(dtype) if g is None else g
            dx = net.backward(y=g)["x"].copy()
        results[backend] = [out, dx] + [b.diff.copy() for blobs in net.params.values() for b in blobs]
    # relative to each array's largest magnitude: sums of products are added in another order than BLAS
    tol = 1e-5 if dtype == "float32" else 1e-12
    for a, b in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))
    return forward_counts, again_counts, backward_counts


def run_part(part):
    """Run ``part`` of this check in a subprocess with NUMBA_ENABLE_CUDASIM=1 (set before numba is imported);
    returns its stdout after asserting that it succeeded. Used by the test modules of the device code."""
    from crfrnn_np.testing import run_under_simulator
    return run_under_simulator([os.path.abspath(__file__), part], ok="cudasim net OK")


def assert_part(out, kernels=(), lines=(), one_in_one_out=()):
    """Check a part's stdout: these kernels were launched, these lines printed, and the nets of
    ``one_in_one_out`` (``"name dtype"``) moved one input in and one output back in their first forward."""
    launched = out.split("launched:")[1].split("\n")[0].split()
    for kernel in kernels:
        assert kernel in launched, (kernel, launched)
    for line in lines:
        assert line in out, line
    for net in one_in_one_out:
        assert ("%s transfers: first forward {'to_device': 1, 'to_host': 1}, forward {'to_device': 1, "
                "'to_host': 1}" % net) in out, net


def cuda_ops_check():
    """crfrnn_np/cuda_ops.py: fill, copy, scale and axpby against NumPy, in both dtypes."""
    from numba import cuda
    from crfrnn_np import cuda_ops
    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((3, 5)).astype(dtype)
        y = rng.standard_normal((3, 5)).astype(dtype)
        dx, dy, out = cuda.to_device(x), cuda.to_device(y), cuda_ops.empty((3, 5), dtype)
        cuda_ops.fill(out, 2.5)
        np.testing.assert_array_equal(out.copy_to_host(), np.full((3, 5), 2.5, dtype))
        cuda_ops.copy(dx, out)
        np.testing.assert_array_equal(out.copy_to_host(), x)
        cuda_ops.scale(-3, dx, out)
        np.testing.assert_array_equal(out.copy_to_host(), x * dtype(-3))
        cuda_ops.axpby(2, dx, -0.5, dy, dx)                  # in place on x
        np.testing.assert_array_equal(dx.copy_to_host(), dtype(2) * x + dtype(-0.5) * y)
    print("cuda_ops OK")


def synced_memory_rules():
    """Caffe's SyncedMemory rule on one blob: reads copy only when the other side is newer, host writes mark
    the host newer, buffers are made once per shape."""
    from crfrnn_np.blob import Blob
    blob = Blob((2, 5), np.float32, "b")
    with counting_transfers() as counts:
        dev = blob.mutable_gpu_data()                       # zeros made on the device: nothing crosses
        assert counts == {"to_device": 0, "to_host": 0}, counts
        np.testing.assert_array_equal(blob.cpu_data(), 0)  # device newer: one copy back
        blob.cpu_data()
        blob.gpu_data()                                     # synced: nothing crosses
        assert counts == {"to_device": 0, "to_host": 1}, counts
        blob.data[0, 0] = 7                                 # a host write: host newer
        assert blob.gpu_data() is dev                       # the same buffer, updated once
        assert counts == {"to_device": 1, "to_host": 1}, counts
        assert dev.copy_to_host()[0, 0] == 7
        blob.reshape((2, 5))                                # same shape: buffers kept
        assert blob.gpu_data() is dev
        blob.reshape((3, 5))                                # new shape: new buffers
        assert blob.gpu_data() is not dev and blob.gpu_data().shape == (3, 5)
    print("synced memory OK")


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np.cuda_kernel import recording
    from crfrnn_np.testing import assert_declared
    part = sys.argv[1] if len(sys.argv) > 1 else None
    extra = {"synced": synced_memory_rules, "ops": cuda_ops_check}
    with recording() as launches:
        for name in list(PARTS) + list(extra) if part is None else [part]:
            if name in extra:
                extra[name]()
            else:
                check_nets(name)
    assert_declared(launches)
    print("launched:", " ".join(sorted(name.rsplit(".", 1)[-1] for name in {n for n, _ in launches})))
    print("cudasim net OK")
    return 0


#: Host -> device and device -> host copies (to_device, to_host) of each net's first forward, a second forward
#: on the same inputs, and the backward. Forward: each input in, each output back, nothing else (parameters
#: went to the device when the net was made; the lattices are built on the device from features made there,
#: the spatial one at set-up, the bilateral one per image from the image input in the forward, with the
#: vertex count kept on the device). Backward: the output's diff in, each input's diff back (the filter net's
#: image gets a zero diff on the device, the CRF layer's none). Before the features were made on the device
#: the filter net's first forward was (1 + 2, 1 + 2): per image the features across, the vertex count back.
TRANSFERS = {"small": ((1, 1), (1, 1), (1, 1)), "step": ((1, 1), (1, 1), (1, 1)),
             "filters": ((2, 1), (2, 1), (1, 2)), "crf": ((2, 1), (2, 1), (1, 1)),
             "fcn": ((1, 1), (1, 1), (1, 1)), "copy": ((1, 1), (1, 1), (1, 1)),
             "ip": ((1, 1), (1, 1), (1, 1)), "pool": ((1, 1), (1, 1), (1, 1)), "eltwise": ((1, 1), (1, 1), (1, 1)),
             # scores and labels in, loss and accuracy back; backward: nothing in (the loss weight is read on the
             # host), each input's diff back (the labels' Split writes theirs, zero, as on the CPU)
             "loss": ((2, 2), (2, 2), (0, 2))}


#: Eltwise PROD (both gradient forms) and MAX (three bottoms).
ELTWISE_NET = """name: "eltwise" force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "a" type: "TanH" bottom: "x" top: "a" }
layer { name: "b" type: "Sigmoid" bottom: "x" top: "b" }
layer { name: "p" type: "Eltwise" bottom: "a" bottom: "b" bottom: "x" top: "p" eltwise_param { operation: PROD } }
layer { name: "q" type: "Eltwise" bottom: "p" bottom: "b" top: "q"
        eltwise_param { operation: PROD stable_prod_grad: false } }
layer { name: "y" type: "Eltwise" bottom: "q" bottom: "a" bottom: "x" top: "y" eltwise_param { operation: MAX } }"""

#: SoftmaxWithLoss (with an ignored label) and Accuracy (top 2) on the device.
LOSS_NET = """name: "loss" force_backward: true
layer { name: "in" type: "Input" top: "x" top: "label" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 }
        shape { dim: 2 dim: 1 dim: 4 dim: 4 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss"
        loss_param { ignore_label: 1 } }
layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" accuracy_param { top_k: 2 } }"""


def run_loss_net(dtype):
    """LOSS_NET on cuda and cpu: loss, accuracy and the scores' diff agree; returns the transfer counts of
    the first and second cuda forwards and of the backward."""
    from crfrnn_np import Net, proto
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
    label = rng.integers(0, 3, (2, 1, 4, 4)).astype(dtype)
    results = {}
    for backend in ("cpu", "cuda"):
        net = Net(proto.parse(LOSS_NET), dtype=dtype, backend=backend)
        assert sorted({layer.type for layer in net.layers} - {"Input"}) == ["Accuracy", "SoftmaxWithLoss", "Split"]
        with counting_transfers() as forward_counts:
            net.forward(x=x, label=label)
        with counting_transfers() as again_counts:
            out = net.forward(x=x, label=label)
            out = [float(out["loss"]), float(out["acc"])]
        with counting_transfers() as backward_counts:
            dx = net.backward()["x"].copy()
        results[backend] = out, dx, forward_counts, again_counts, backward_counts
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], rtol=tol)
    np.testing.assert_allclose(results["cuda"][1], results["cpu"][1], rtol=tol, atol=tol)
    assert results["cpu"][0][0] > 0 and 0 < results["cpu"][0][1] <= 1
    return results["cuda"][2:]


#: The nets each part of the check runs, with their dtypes (the simulator is slow: the filter net in float32,
#: the CRF net, T = 2 iterations of all the step layers and the filters, in float64). Each device-code module
#: has its test module (tests/layers/test_conv_cuda.py, ...) that runs its part as a subprocess.
PARTS = {
    "neuron": ((NET, ("float32", "float64")),),
    "crf_steps": ((STEP_NET, ("float32", "float64")),),
    "filters": ((FILTER_NET, ("float32",)), (CRF_NET, ("float64",))),
    "conv": ((FCN_NET, ("float32", "float64")),),
    "pool": ((POOL_NET, ("float32", "float64")),),
    "copy": ((COPY_NET, ("float32", "float64")),),
    "eltwise": ((ELTWISE_NET, ("float32", "float64")),),
    "ip": ((IP_NET, ("float32", "float64")),),
    "loss": ((LOSS_NET, ("float32", "float64")),),
}


def check_nets(part):
    for text, dtypes in PARTS[part]:
        name = text.split('"')[1]
        for dtype in dtypes:
            counts = run_loss_net(dtype) if text is LOSS_NET else run_small_net(dtype, text)
            print("%s %s transfers: first forward %s, forward %s, backward %s" % ((name, dtype) + tuple(counts)))
            expected = [{"to_device": a, "to_host": b} for a, b in TRANSFERS[name]]
            assert list(counts) == expected, (name, counts)

if __name__ == "__main__":
    sys.exit(main())
