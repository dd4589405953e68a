"""``crfrnn segment --backend cuda`` end to end under the numba.cuda simulator, against ``--backend cpu`` (run by
test_segment_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1).

A tiny CRF-RNN net (a 1x1 convolution to 3 classes on an 8 x 8 image, then MultiStageMeanfield with T = 2 on the
STEPS engine) with weights saved by the project (``Net.save``, caffemodel). Both forms of the command:

* ``--image IN --output OUT --panel``;
* ``--images DIR --output-dir OUT --workers 1`` on two images, one the net's size, one larger (shrunk, padded);

exit with status 0 and write the same label maps (bit for bit) and panels on both backends. On cuda each image
of the data-set run moves only itself in and the scores back (its bilateral lattice is built on the device
from it).
"""
import contextlib
import io
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

NET = """name: "tiny_crf"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "splitting" type: "Split" bottom: "score" top: "unary" top: "Q0" }
layer { name: "inference1" type: "MultiStageMeanfield" bottom: "unary" bottom: "Q0" bottom: "data" top: "pred"
        multi_stage_meanfield_param { num_iterations: 2 theta_alpha: 8 theta_beta: 10 theta_gamma: 2
                                      engine: STEPS } }
"""


def make_files(folder):
    """net.prototxt and net.caffemodel (class 1 follows red, class 2 blue, class 0 a constant; a compatibility
    that lets the CRF change labels), and three images: one.png (8 x 8) and set/a.png (8 x 8), set/b.png (12 x 6)."""
    from PIL import Image
    from crfrnn_np import Net
    model = os.path.join(folder, "net.prototxt")
    with open(model, "w") as f:
        f.write(NET)
    net = Net(model)
    weight, bias = net.params["score"]
    weight.data[...] = 0
    weight.data[1, 2, 0, 0] = 0.02                          # BGR blob: channel 2 is R - 122.68
    weight.data[2, 0, 0, 0] = 0.02                          # channel 0 is B - 104.01
    bias.data[...] = [0.5, 0.0, 0.0]
    net.params["inference1"][1].data[0, 0] = 2.0 * np.eye(3)
    weights = os.path.join(folder, "net.caffemodel")
    net.save(weights)
    rng = np.random.default_rng(6)
    os.mkdir(os.path.join(folder, "set"))
    for name, (h, w) in (("one.png", (8, 8)), ("set/a.png", (8, 8)), ("set/b.png", (12, 6))):
        coarse = rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((w, h), Image.BILINEAR).save(os.path.join(folder, name))
    return model, weights


def crfrnn(*argv):
    """``crfrnn ARGV`` in this process: (exit status, standard output, standard error)."""
    from crfrnn_np.tools.main import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def labels_of(path):
    from PIL import Image
    with Image.open(path) as im:
        assert im.mode == "P", (path, im.mode)
        return np.asarray(im).copy()


def main():
    from crfrnn_np.testing import require_device_run
    require_device_run()
    from crfrnn_np.cuda_kernel import recording
    from crfrnn_np.testing import assert_declared
    folder = tempfile.mkdtemp()
    model, weights = make_files(folder)
    common = ["--model", model, "--weights", weights]
    maps = {}
    with recording() as launches:
        for backend in ("cpu", "cuda"):
            out = os.path.join(folder, backend)
            rc, stdout, stderr = crfrnn("segment", *common, "--image", os.path.join(folder, "one.png"), "--output",
                                        os.path.join(out, "one.png"), "--panel", "--backend", backend)
            assert rc == 0, stderr
            assert "wrote " in stdout, stdout
            with counting_segment_transfers() as calls:
                rc, stdout, stderr = crfrnn("segment", *common, "--images", os.path.join(folder, "set"),
                                            "--output-dir", os.path.join(out, "set"), "--workers", "1", "--backend",
                                            backend)
            assert rc == 0, stderr
            if backend == "cuda":
                # per image (no panel): the image in, the output's scores back, and nothing else
                print("segment transfers (to_device, to_host):", calls)
                assert calls == [(1, 1), (1, 1)], calls
            assert "segmented 2, skipped 0 (output exists), failed 0 of 2 images" in stdout, stdout
            maps[backend] = {name: labels_of(os.path.join(out, name)) for name in ("one.png", "set/a.png", "set/b.png")}
            assert os.path.isfile(os.path.join(out, "one_panel.png"))
            print("%s: wrote %s" % (backend, " ".join("%s %dx%d" % (name, m.shape[1], m.shape[0])
                                                      for name, m in sorted(maps[backend].items()))))
    for name, cpu in maps["cpu"].items():
        assert cpu.shape == {"set/b.png": (12, 6)}.get(name, (8, 8)), (name, cpu.shape)
        np.testing.assert_array_equal(maps["cuda"][name], cpu, err_msg=name)
        print("%s: cuda == cpu, classes %s" % (name, sorted(set(cpu.ravel().tolist()))))
    assert any(len(set(m.ravel().tolist())) > 1 for m in maps["cpu"].values()), "every map is one class"
    kernels = sorted({name.rsplit(".", 1)[-1] for name, _ in launches})
    assert_declared(launches)
    print("kernels:", " ".join(kernels))
    print("cudasim segment OK")
    return 0


@contextlib.contextmanager
def counting_segment_transfers():
    """Count the host <-> device copies of each :func:`crfrnn_np.tools.segment.segment` call made inside the
    block, everything included (the bilateral lattice of each new image is built on the device from the
    image there, and moves nothing). Yields the list of ``(to_device, to_host)``."""
    sys.path.insert(0, os.path.join(HERE, "..", "crfrnn_np"))
    from cudasim_net import counting_transfers
    from crfrnn_np.tools import segment as segment_module
    calls = []
    saved = segment_module.segment

    def segment(*args, **kwargs):
        with counting_transfers() as counts:
            result = saved(*args, **kwargs)
        calls.append((counts["to_device"], counts["to_host"]))
        return result

    segment_module.segment = segment
    try:
        yield calls
    finally:
        segment_module.segment = saved


if __name__ == "__main__":
    sys.exit(main())
