"""Under the numba.cuda simulator: each dense layer's device forward and backward against its CPU form (the
same tiny net on ``cuda`` and ``cpu``, float32 and float64), and every launch with a declared (PTX-compiled)
signature. Run by the tests/layers/test_*_cuda.py files in a subprocess with NUMBA_ENABLE_CUDASIM=1 (set before
numba is imported): ``python cudasim_dense_check.py GROUP`` checks the nets of one group (see ``GROUPS``)."""
import os
import sys

import numpy as np


def _input(name, *shape):
    dims = " ".join("dim: %d" % d for d in shape)
    return 'layer { name: "%s" type: "Input" top: "%s" input_param { shape { %s } } }\n' % (name, name, dims)


def _net(body, *inputs, force=True):
    head = 'name: "t" %s\n' % ("force_backward: true" if force else "")
    return head + "".join(_input(*i) for i in inputs) + body


LABELS = ("label", 2, 1, 3, 3)
SCORES = ("x", 2, 4, 3, 3)

#: group -> [(title, net text, phase)]; a net's inputs are filled at random (labels: classes 0..3 and 255),
#: its non-loss outputs get a random diff.
GROUPS = {
    "copy": [
        ("crop 4-D", _net('layer { name: "c" type: "Crop" bottom: "x" bottom: "r" top: "y" '
                          'crop_param { axis: 2 offset: 1 offset: 0 } }', ("x", 2, 3, 6, 5), ("r", 2, 3, 3, 4)),
         "TEST"),
        ("crop 3-D", _net('layer { name: "c" type: "Crop" bottom: "x" bottom: "r" top: "y" '
                          'crop_param { axis: 1 offset: 2 } }', ("x", 2, 6, 5), ("r", 2, 3, 2)), "TEST"),
        ("crop 5-D", _net('layer { name: "c" type: "Crop" bottom: "x" bottom: "r" top: "y" '
                          'crop_param { axis: 2 offset: 1 offset: 1 offset: 0 } }', ("x", 2, 2, 3, 4, 2),
                          ("r", 2, 2, 2, 2, 2)), "TEST"),
        ("crop 5-D channels and depth", _net('layer { name: "c" type: "Crop" bottom: "x" bottom: "r" top: "y" '
                                             'crop_param { axis: 1 offset: 1 offset: 1 offset: 0 offset: 0 } }',
                                             ("x", 2, 3, 3, 2, 2), ("r", 2, 2, 2, 2, 2)), "TEST"),
        ("crop 5-D leading axis (host)", _net('layer { name: "c" type: "Crop" bottom: "x" bottom: "r" top: "y" '
                                              'crop_param { axis: 1 offset: 1 } }', ("x", 2, 3, 3, 3, 3),
                                              ("r", 2, 2, 2, 2, 2)), "TEST"),
        ("concat", _net('layer { name: "c" type: "Concat" bottom: "x" bottom: "z" top: "y" }\n'
                        'layer { name: "d" type: "Concat" bottom: "y" bottom: "y" top: "w" '
                        'concat_param { axis: 2 } }', ("x", 2, 2, 3, 3), ("z", 2, 1, 3, 3)), "TEST"),
        ("reshape flatten", _net('layer { name: "r" type: "Reshape" bottom: "x" top: "y" '
                                 'reshape_param { shape { dim: 0 dim: -1 dim: 3 } } }\n'
                                 'layer { name: "t" type: "TanH" bottom: "y" top: "y" }\n'
                                 'layer { name: "f" type: "Flatten" bottom: "y" top: "w" }',
                                 ("x", 2, 3, 2, 3)), "TEST"),
        ("dropout train", _net('layer { name: "d" type: "Dropout" bottom: "x" top: "y" '
                               'dropout_param { dropout_ratio: 0.3 } }', ("x", 2, 3, 4, 5)), "TRAIN"),
        ("dropout train MT19937 (host mask)", _net('layer { name: "d" type: "Dropout" bottom: "x" top: "y" }',
                                                   ("x", 2, 3, 4, 5)), "TRAIN", np.random.MT19937),
        ("dropout test", _net('layer { name: "d" type: "Dropout" bottom: "x" top: "y" }', ("x", 2, 3, 4, 5)),
         "TEST"),
    ],
    "loss": [
        ("softmax loss VALID ignore", _net('layer { name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" '
                                           'top: "loss" loss_param { ignore_label: 255 } }', SCORES, LABELS),
         "TEST"),
        ("softmax loss FULL prob", _net('layer { name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" '
                                        'top: "loss" top: "prob" loss_weight: 2 loss_weight: 0 '
                                        'loss_param { ignore_label: 255 normalization: FULL } }',
                                        SCORES, LABELS), "TEST"),
        ("softmax loss BATCH_SIZE", _net('layer { name: "l" type: "SoftmaxWithLoss" bottom: "x" '
                                         'bottom: "label" top: "loss" loss_param { ignore_label: 255 '
                                         'normalization: BATCH_SIZE } }', SCORES, LABELS), "TEST"),
        ("softmax loss NONE", _net('layer { name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" '
                                   'top: "loss" loss_param { ignore_label: 255 normalization: NONE } }',
                                   SCORES, LABELS), "TEST"),
        ("accuracy", _net('layer { name: "a" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" '
                          'top: "per_class" accuracy_param { top_k: 2 ignore_label: 255 } }', SCORES, LABELS,
                          force=False), "TEST"),
    ],
    "pool": [
        ("max pool ceil pad mask", _net('layer { name: "p" type: "Pooling" bottom: "x" top: "y" top: "m" '
                                        'pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }',
                                        ("x", 1, 2, 6, 5)), "TEST"),
        ("max pool overlap", _net('layer { name: "p" type: "Pooling" bottom: "x" top: "y" '
                                  'pooling_param { pool: MAX kernel_h: 3 kernel_w: 2 stride: 1 } }',
                                  ("x", 1, 2, 4, 5)), "TEST"),
        ("ave pool ceil pad", _net('layer { name: "p" type: "Pooling" bottom: "x" top: "y" '
                                   'pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }',
                                   ("x", 1, 2, 6, 5)), "TEST"),
        ("ave pool global", _net('layer { name: "p" type: "Pooling" bottom: "x" top: "y" '
                                 'pooling_param { pool: AVE global_pooling: true } }', ("x", 2, 2, 3, 4)), "TEST"),
    ],
    "gemm": [
        ("inner product", _net('layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
                               'inner_product_param { num_output: 3 } }', ("x", 2, 2, 2, 3)), "TEST"),
        ("inner product transpose axis 2", _net('layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
                                                'inner_product_param { num_output: 3 transpose: true axis: 2 '
                                                'bias_term: false } }', ("x", 2, 2, 9)), "TEST"),
    ],
    "conv": [
        ("conv pad stride bias", _net('layer { name: "c" type: "Convolution" bottom: "x" top: "y" '
                                      'convolution_param { num_output: 2 kernel_size: 3 pad: 1 stride: 2 } }',
                                      ("x", 2, 1, 4, 3)), "TEST"),
        ("conv group dilation", _net('layer { name: "c" type: "Convolution" bottom: "x" top: "y" '
                                     'convolution_param { num_output: 2 kernel_h: 2 kernel_w: 3 dilation: 2 '
                                     'group: 2 bias_term: false } }', ("x", 1, 2, 4, 5)), "TEST"),
        ("conv 1x1 two bottoms", _net('layer { name: "c" type: "Convolution" bottom: "x" bottom: "z" top: "y" '
                                      'top: "w" convolution_param { num_output: 2 kernel_size: 1 } }',
                                      ("x", 1, 3, 2, 3), ("z", 1, 3, 2, 3)), "TEST"),
        ("conv 3-D (host)", _net('layer { name: "c" type: "Convolution" bottom: "x" top: "y" '
                                 'convolution_param { num_output: 2 kernel_size: 2 } }', ("x", 1, 2, 3, 3, 3)),
         "TEST"),
        ("deconv stride pad bias", _net('layer { name: "d" type: "Deconvolution" bottom: "x" top: "y" '
                                        'convolution_param { num_output: 2 kernel_size: 3 stride: 2 pad: 1 } }',
                                        ("x", 1, 2, 2, 2)), "TEST"),
        ("deconv group", _net('layer { name: "d" type: "Deconvolution" bottom: "x" top: "y" '
                              'convolution_param { num_output: 2 kernel_size: 3 stride: 2 group: 2 '
                              'dilation: 2 } }', ("x", 1, 2, 2, 3)), "TEST"),
    ],
}


def run_both(text, phase, dtype, seed=7, bit_generator=None):
    """Forward and backward of ``text`` on cpu and cuda with the same inputs, parameters and random stream (the
    engine's PCG64, or a generator on ``bit_generator``); returns ``{backend: [arrays]}`` (outputs, input diffs,
    parameter diffs, and the next three draws of the engine's stream)."""
    from crfrnn_np import Net, proto
    from crfrnn_np import random as crfrnn_random
    rng = np.random.default_rng(seed)
    results, params, inputs, grads = {}, None, None, None
    for backend in ("cpu", "cuda"):
        net = Net(proto.parse(text), dtype=dtype, backend=backend, phase=phase)
        if inputs is None:
            inputs = {}
            for name in net.inputs:
                shape = net.blobs[name].shape
                if name == "label":
                    v = rng.integers(0, 4, size=shape).astype(float)
                    v[rng.random(shape) < 0.2] = 255
                else:
                    v = rng.standard_normal(shape)
                inputs[name] = v.astype(dtype)
            params = {n: [rng.standard_normal(b.shape).astype(dtype) for b in bs] for n, bs in net.params.items()}
        for name, blobs in net.params.items():
            for blob, value in zip(blobs, params[name]):
                blob.data[...] = value
        crfrnn_random.set_seed(seed)
        if bit_generator is not None:
            crfrnn_random._rng = np.random.Generator(bit_generator(seed))
        # copies: a layer in place on a view of an input (Reshape, then TanH in place) writes the array it was given
        out = {k: np.array(v) for k, v in net.forward(**{k: v.copy() for k, v in inputs.items()}).items()}
        if grads is None:
            grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in out.items()
                     if not any(w for w in _loss_weights(net, k))}
        diffs = net.backward(**{k: v.copy() for k, v in grads.items()}) if net.layer_need_backward and any(net.layer_need_backward) else {}
        results[backend] = ([out[k] for k in sorted(out)] + [np.array(diffs[k]) for k in sorted(diffs)]
                            + [b.cpu_diff().copy() for bs in net.params.values() for b in bs]
                            + [crfrnn_random.rng().random(3)])
    crfrnn_random.set_seed(seed)
    return results


def _loss_weights(net, blob_name):
    for layer, tops in zip(net.layers, net.top_vecs):
        for t, w in zip(tops, layer.loss_weights):
            if t is net.blobs[blob_name]:
                yield w


def check_group(group):
    from crfrnn_np.cuda_kernel import recording
    from crfrnn_np.testing import assert_declared
    with recording() as launches:
        for title, text, phase, *bit_generator in GROUPS[group]:
            for dtype in ("float32", "float64"):
                res = run_both(text, phase, dtype, bit_generator=(bit_generator or [None])[0])
                tol = 2e-5 if dtype == "float32" else 1e-12
                for a, b in zip(res["cuda"], res["cpu"]):
                    if title.startswith("dropout"):     # the same mask and the same product: bit for bit
                        np.testing.assert_array_equal(a, b, err_msg="%s %s" % (title, dtype))
                    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg="%s %s" % (title, dtype))
                print("%s %s: cuda == cpu (%d arrays)" % (title, dtype, len(res["cpu"])))
    assert_declared(launches)
    print("launched:", " ".join(sorted({n.rsplit(".", 1)[-1] for n, _ in launches})))


#: A small segmentation-like net of the dense layers: every layer runs on the device.
NET = _net("""layer { name: "conv1" type: "Convolution" bottom: "x" top: "c1"
        convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "pool1" type: "Pooling" bottom: "c1" top: "p1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up" type: "Deconvolution" bottom: "p1" top: "u" convolution_param { num_output: 2 kernel_size: 4
        stride: 2 } }
layer { name: "crop" type: "Crop" bottom: "u" bottom: "c1" top: "uc" crop_param { offset: 1 } }
layer { name: "cat" type: "Concat" bottom: "c1" bottom: "uc" top: "cat" }
layer { name: "score" type: "Convolution" bottom: "cat" top: "s" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "label" top: "loss" loss_param { ignore_label: 255 } }
layer { name: "fc" type: "InnerProduct" bottom: "p1" top: "fc" inner_product_param { num_output: 3 } }
""", ("x", 1, 1, 4, 4), ("label", 1, 1, 4, 4))
NET_TYPES = ["Concat", "Convolution", "Crop", "Deconvolution", "InnerProduct", "Pooling", "ReLU", "SoftmaxWithLoss",
             "Split"]


def check_net(dtype):
    """NET on cuda against cpu: outputs, input and parameter gradients to 1e-4 relative; returns the transfer
    counts of the cuda forward and backward (the parameters are sent across before)."""
    from crfrnn_np import Net, proto
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crfrnn_np"))
    from cudasim_net import counting_transfers
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 1, 4, 4)).astype(dtype)
    label = rng.integers(0, 3, size=(1, 1, 4, 4)).astype(dtype)
    label[0, 0, 0, :2] = 255
    g = rng.standard_normal((1, 3)).astype(dtype)
    results, params, counts = {}, None, {}
    for backend in ("cpu", "cuda"):
        net = Net(proto.parse(NET), dtype=dtype, backend=backend)
        assert sorted({layer.type for layer in net.layers} - {"Input"}) == NET_TYPES
        if params is None:
            params = {n: [rng.standard_normal(b.shape).astype(dtype) * 0.5 for b in bs] for n, bs in net.params.items()}
        for name, blobs in net.params.items():
            for blob, value in zip(blobs, params[name]):
                blob.data[...] = value
                if backend == "cuda":
                    blob.gpu_data()                 # the parameters cross now, before the counted pass
        with counting_transfers() as counts["forward"]:
            out = net.forward(x=x.copy(), label=label.copy())
            out = [np.array(out["loss"]), np.array(out["fc"])]
        with counting_transfers() as counts["backward"]:
            dx = np.array(net.backward(fc=g.copy())["x"])
        results[backend] = out + [dx] + [b.cpu_diff().copy() for bs in net.params.values() for b in bs]
    for a, b in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * max(1.0, float(np.abs(b).max())))
    print("net %s: cuda == cpu (loss %.6f, %d arrays)" % (dtype, float(results["cpu"][0]), len(results["cpu"])))
    return counts


def dropout_transfers():
    """A TRAIN Dropout forward on the device moves its input in and its output back, no mask."""
    from crfrnn_np import Net, proto
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crfrnn_np"))
    from cudasim_net import counting_transfers
    text = next(case[1] for case in GROUPS["copy"] if case[0] == "dropout train")
    net = Net(proto.parse(text), backend="cuda", phase="TRAIN")
    x = np.ones((2, 3, 4, 5), np.float32)
    with counting_transfers() as counts:
        net.forward(x=x)
    assert counts == {"to_device": 1, "to_host": 1}, counts
    print("dropout train transfers:", counts)


def bad_label():
    """A label outside 0..C-1 raises from the device loss and from the device accuracy, naming it."""
    from crfrnn_np import Net, NetError, proto
    text = _net('layer { name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" }\n'
                'layer { name: "a" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" }', SCORES, LABELS)
    net = Net(proto.parse(text), backend="cuda")
    labels = np.zeros((2, 1, 3, 3), np.float32)
    labels[1, 0, 2, 1] = 7
    try:
        net.forward(x=np.zeros((2, 4, 3, 3), np.float32), label=labels)
    except NetError as exc:
        assert "label 7 in bottom 'label" in str(exc) and "outside 0..3" in str(exc), exc
    else:
        raise AssertionError("no error for label 7 of 4 classes")
    try:
        net.layers[-1].forward(net.bottom_vecs[-1], net.top_vecs[-1])
    except NetError as exc:
        assert "label 7 in bottom 'label" in str(exc) and "outside 0..3" in str(exc), exc
    else:
        raise AssertionError("no error from Accuracy for label 7 of 4 classes")
    print("bad label: raised")


#: The GEMM tile and the 1-D block size under the simulator, set before the kernel modules are imported: the
#: simulator runs every thread of a block as a Python thread, and on these tiny shapes most threads of a
#: 16 x 16 tile or a 128-thread block would only check their bounds (the kernels are written for any tile
#: and any power-of-two block; the PTX test compiles the configured ones). A tile smaller than the shapes
#: also makes every GEMM cross tile borders.
SIMULATOR_TILE = 4
SIMULATOR_THREADS = 32


def main(argv):
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np import config
    assert "crfrnn_np.cuda_kernel" not in sys.modules and "crfrnn_np.layers.gemm_cuda" not in sys.modules
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":      # on a real GPU: the configured tile and block
        config.GEMM_TILE = SIMULATOR_TILE
        config.THREADS_PER_BLOCK = SIMULATOR_THREADS
    for group in argv or sorted(GROUPS) + ["net"]:
        if group == "net":
            from crfrnn_np.cuda_kernel import recording
            from crfrnn_np.testing import assert_declared
            with recording() as launches:
                for dtype in ("float32", "float64"):
                    counts = check_net(dtype)
                    print("net %s transfers: forward %s, backward %s" % (dtype, counts["forward"],
                                                                         counts["backward"]))
                    # forward: x and label in, loss and fc back; backward: fc's diff in, x's diff back
                    assert counts["forward"] == {"to_device": 2, "to_host": 2}, counts
                    assert counts["backward"] == {"to_device": 1, "to_host": 1}, counts
            assert_declared(launches)
            print("launched:", " ".join(sorted({n.rsplit(".", 1)[-1] for n, _ in launches})))
            print("cudasim net OK")
            continue
        check_group(group)
        if group == "loss":
            bad_label()
        if group == "copy":
            dropout_transfers()
        print("cudasim %s OK" % group)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
