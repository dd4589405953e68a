"""Under the numba.cuda simulator: the label range check of SoftmaxWithLoss and Accuracy on the ``cuda`` backend
(layers/labels.py). Run by test_labels.py in a subprocess with NUMBA_ENABLE_CUDASIM=1.

Two ways the labels reach the layers: fed from the host (their host copy is current: checked there) and made
on the device by a Crop (device only: checked by the kernels, the first bad position read back). For each, a
bad label raises the very message of the CPU layer; labels equal to the ignore label, out of range or not,
give the CPU's values; and a forward moves across only what the docstrings say.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

#: The labels straight from the input (host copy current).
HOST = 'layer { name: "in" type: "Input" top: "x" top: "label" input_param { shape { dim: 2 dim: 4 dim: 3 dim: 3 } ' \
       'shape { dim: 2 dim: 1 dim: 3 dim: 3 } } }\n'
#: The labels cut out of a larger map by a Crop on the device (device copy only).
DEVICE = 'layer { name: "in" type: "Input" top: "x" top: "big" input_param { shape { dim: 2 dim: 4 dim: 3 dim: 3 } ' \
         'shape { dim: 2 dim: 1 dim: 5 dim: 4 } } }\n' \
         'layer { name: "crop" type: "Crop" bottom: "big" bottom: "x" top: "label" crop_param { axis: 2 offset: 1 ' \
         'offset: 0 } }\n'
LOSS = 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" %s }\n'
ACCURACY = 'layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" top: "per_class" ' \
           'accuracy_param { top_k: 2 %s } }\n'
IGNORE = {LOSS: "loss_param { ignore_label: 255 }", ACCURACY: "ignore_label: 255"}


def text(source, layer, ignore):
    return 'name: "labels"\n' + source + layer % (IGNORE[layer] if ignore else "")


def feed(source, labels):
    """The inputs of a net with ``labels`` (2, 1, 3, 3) as its labels: the big map has them at rows 1..3."""
    x = np.random.default_rng(4).standard_normal((2, 4, 3, 3)).astype(np.float32)
    if source is HOST:
        return {"x": x, "label": labels}
    big = np.full((2, 1, 5, 4), 9.0, np.float32)           # 9: a bad label, cropped away
    big[:, :, 1:4, 0:3] = labels
    return {"x": x, "big": big}


def run(source, layer, ignore, labels, backend):
    """``(outputs, None)`` of one forward, or ``(None, error message)``; on cuda also the transfer counts."""
    from crfrnn_np import Error, Net, proto
    sys.path.insert(0, os.path.join(HERE, "..", "crfrnn_np"))
    from cudasim_net import counting_transfers
    net = Net(proto.parse(text(source, layer, ignore)), backend=backend)
    inputs = feed(source, labels)
    with counting_transfers() as counts:
        try:
            out = net.forward(**inputs)
        except Error as exc:
            return None, str(exc), counts
    return {k: np.array(v) for k, v in out.items()}, None, counts


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np.cuda_kernel import recording
    from crfrnn_np.testing import assert_declared
    rng = np.random.default_rng(2)
    good = rng.integers(0, 4, (2, 1, 3, 3)).astype(np.float32)
    bad = good.copy()
    bad[1, 0, 2, 1] = 7
    bad[1, 0, 2, 2] = -1                                    # a later bad label: the first one is named
    ignored = good.copy()
    ignored[0, 0, 1, :] = 255                               # out of range, but the ignore label
    with recording() as launches:
        for source, where in ((HOST, "host"), (DEVICE, "device")):
            for layer, name in ((LOSS, "SoftmaxWithLoss"), (ACCURACY, "Accuracy")):
                # a bad label: the CPU's message, word for word
                _, cpu_error, _ = run(source, layer, False, bad, "cpu")
                _, cuda_error, _ = run(source, layer, False, bad, "cuda")
                assert cpu_error is not None and "label 7 in bottom 'label' at (1, 0, 2, 1) is outside 0..3" \
                    in cpu_error, cpu_error
                assert cuda_error == cpu_error, (cuda_error, cpu_error)
                print("%s labels, %s: bad label raised: %s" % (where, name, cuda_error))
                # good and ignored labels: the CPU's values
                for title, labels, ignore in (("good", good, False), ("ignored", ignored, True)):
                    cpu, err, _ = run(source, layer, ignore, labels, "cpu")
                    assert err is None, err
                    out, err, counts = run(source, layer, ignore, labels, "cuda")
                    assert err is None, err
                    for k in cpu:
                        np.testing.assert_allclose(out[k], cpu[k], rtol=1e-6, atol=1e-7, err_msg=k)
                    # inputs in and outputs back; labels made on the device cost Accuracy one read back
                    extra = 1 if (source is DEVICE and layer is ACCURACY) else 0
                    expected = {"to_device": 2, "to_host": len(cpu) + extra}
                    assert counts == expected, (where, name, title, counts, expected)
                    print("%s labels, %s, %s labels: cuda == cpu, transfers %s" % (where, name, title, counts))
    assert_declared(launches)
    print("cudasim labels OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
