"""The device lattice cache of PermutohedralFilter (layers/permutohedral_filter.py) under the numba.cuda
simulator: one bilateral build per image per forward whatever the number of filters, none for the backward,
a rebuild when the image input is written again, into the arrays of the build before (a forward on a new
image allocates nothing on the device), and outputs equal to the CPU's for each new image (run by
test_permutohedral_filter.py in a subprocess with NUMBA_ENABLE_CUDASIM=1)."""
import os
import sys

import numpy as np

NET = """name: "cache" force_backward: true
layer { name: "in" type: "Input" top: "q" top: "image" input_param { shape { dim: 2 dim: 2 dim: 5 dim: 6 }
        shape { dim: 2 dim: 3 dim: 5 dim: 6 } } }
layer { name: "b1" type: "PermutohedralFilter" bottom: "q" bottom: "image" top: "m1"
        permutohedral_param { kernel: BILATERAL theta_alpha: 3 theta_beta: 20 } }
layer { name: "b2" type: "PermutohedralFilter" bottom: "m1" bottom: "image" top: "m2"
        permutohedral_param { kernel: BILATERAL theta_alpha: 3 theta_beta: 20 } }
layer { name: "s" type: "PermutohedralFilter" bottom: "m2" bottom: "image" top: "y"
        permutohedral_param { kernel: SPATIAL theta_gamma: 2 } }"""


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np import Net, proto
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crfrnn_np"))
    from cudasim_net import counting_allocations
    rng = np.random.default_rng(4)
    nets = {backend: Net(proto.parse(NET), dtype="float32", backend=backend) for backend in ("cpu", "cuda")}
    cache = nets["cuda"].lattice_cache
    q = rng.standard_normal((2, 2, 5, 6)).astype(np.float32)
    builds = []
    allocations = []
    for step in range(2):
        image = rng.uniform(-100, 100, (2, 3, 5, 6)).astype(np.float32)
        outs = {}
        for backend, net in nets.items():
            before = net.lattice_cache.builds
            with counting_allocations() as made:
                outs[backend] = net.forward(q=q, image=image)["y"].copy(), net.backward(y=q)["q"].copy()
            builds.append((backend, net.lattice_cache.builds - before))
            if backend == "cuda":
                allocations.append(made[0])
        for got, want in zip(outs["cuda"], outs["cpu"]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    # the first forward: 2 bilateral (one per image, shared by b1 and b2) + 1 spatial; later: the 2 bilateral
    assert [n for backend, n in builds if backend == "cuda"] == [3, 2], builds
    # the second image's lattices are built into the first's arrays: a forward allocates nothing on the device
    assert allocations[0] > 0 and allocations[1] == 0, allocations
    # the image blob written through its host view: rebuilt; not written (a forward without inputs): reused
    net = nets["cuda"]
    before = cache.builds
    net.forward()
    assert cache.builds == before
    net.blobs["image"].data[0, 0, 0, 0] += 50
    net.forward()
    assert cache.builds == before + 2
    print("cudasim filter cache OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
