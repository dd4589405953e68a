"""Under the numba.cuda simulator: MAX Pooling with a mask top on the ``cuda`` backend (run by test_pool_mask.py
in a subprocess with NUMBA_ENABLE_CUDASIM=1).

The mask top is made and read on the device: the forward kernel writes it beside the layer's own int64 mask,
and the backward reads it (as float, the second declared signature of ``max_backward_kernel``). Two nets, both
against the CPU, float32 and float64, with the transfers of a forward and a backward counted:

* ``outputs``: the pooled values and the mask are both outputs (x in; y and m back);
* ``consumed``: the mask feeds an Eltwise on the device and never leaves it (x in, z back; backward: dz in,
  dx back), so no host copy of the mask is ever made or read.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

HEAD = 'name: "%s" force_backward: true\n' \
       'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 2 dim: 7 dim: 6 } } }\n' \
       'layer { name: "p" type: "Pooling" bottom: "x" top: "y" top: "m" pooling_param { pool: MAX kernel_size: 3 ' \
       'stride: 2 pad: 1 } }\n'
NETS = {"outputs": HEAD % "outputs",
        "consumed": HEAD % "consumed" + 'layer { name: "e" type: "Eltwise" bottom: "y" bottom: "m" top: "z" '
                                        'eltwise_param { coeff: 1 coeff: 0.01 } }\n'}
#: (forward, backward) transfers as (to_device, to_host).
TRANSFERS = {"outputs": ((1, 2), (1, 1)), "consumed": ((1, 1), (1, 1))}


def run(name, dtype, backend):
    """Outputs, the input's diff, and (cuda) the transfer counts of the forward and of the backward."""
    from crfrnn_np import Net, proto
    sys.path.insert(0, os.path.join(HERE, "..", "crfrnn_np"))
    from cudasim_net import counting_transfers
    net = Net(proto.parse(NETS[name]), dtype=dtype, backend=backend)
    assert [layer.type for layer in net.layers][1] == "Pooling"
    x = np.random.default_rng(9).standard_normal((2, 2, 7, 6)).astype(dtype)
    x[0, 0, :2, :2] = 1.5                                   # a tie: the first maximum in row-major order wins
    with counting_transfers() as forward:
        out = {k: np.array(v) for k, v in net.forward(x=x).items()}
    top = "y" if "y" in out else "z"                       # the pooled values' diff (the mask has none)
    g = np.random.default_rng(10).standard_normal(out[top].shape).astype(dtype)
    with counting_transfers() as backward:
        dx = np.array(net.backward(**{top: g})["x"])
    return [out[k] for k in sorted(out)] + [dx], (forward, backward)


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np.cuda_kernel import recording
    from crfrnn_np.testing import assert_declared
    with recording() as launches:
        for name in NETS:
            for dtype in ("float32", "float64"):
                cpu, _ = run(name, dtype, "cpu")
                cuda, counts = run(name, dtype, "cuda")
                for a, b in zip(cuda, cpu):                 # MAX routes values: the same bits
                    np.testing.assert_array_equal(a, b, err_msg="%s %s" % (name, dtype))
                expected = tuple({"to_device": d, "to_host": h} for d, h in TRANSFERS[name])
                assert counts == expected, (name, dtype, counts, expected)
                print("%s %s: cuda == cpu, transfers forward %s, backward %s" % ((name, dtype) + counts))
    assert_declared(launches)
    masks = {str(sig[1].dtype) for name, sig in launches if name.endswith(".max_backward_kernel")}
    assert masks == {"float32", "float64"}, masks        # the backward read the mask top, not the int64 mask
    print("launched:", " ".join(sorted({n.rsplit(".", 1)[-1] for n, _ in launches})))
    print("cudasim pool mask OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
