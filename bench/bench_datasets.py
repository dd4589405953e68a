"""bench_datasets: ``crfrnn segment --images`` over a small set at 500 x 500 (issue 11, "Bench").

What: the CRF-RNN deploy net (``models/crfrnn_deploy.prototxt``, random He-normal weights from
:func:`bench.common.random_params`, float32, CPU) on ``BENCH_DATASET_IMAGES`` (default 6) images of 500 x 500:
the demo photograph stretched to that size, each rolled by a different offset so that no two are alike.

How: each run is a fresh ``crfrnn segment --images DIR --output-dir OUT --overwrite`` process (its own
figure: the seconds of its summary line, from the image list to the last output written, so the net and
weights loaded by each worker and, for the pool, the spawned processes starting are inside it):

* ``--workers 1``: this process, numba and BLAS on all the cores;
* ``--workers 2``: two spawned processes on ``cores / 2`` threads each;
* ``--scheduler``: a dask ``LocalCluster`` of two worker processes with one thread each (started and, before
  every run, restarted outside the timing, so that no worker keeps the net of the previous run), i.e. the
  same processes and threads as ``--workers 2``.

Runs alternate pool / dask for ``BENCH_DATASET_ROUNDS`` (default 2) rounds; the best of each counts. Every
run's outputs must equal the ``--workers 1`` outputs byte for byte.

Target: dask / pool <= 1.10 (the overhead of the Dask path over the local pool on the same images).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from bench.common import REPO_ROOT, random_params, thread_env

IMAGES = int(os.environ.get("BENCH_DATASET_IMAGES", "6"))
ROUNDS = int(os.environ.get("BENCH_DATASET_ROUNDS", "2"))
SIZE = 500
TARGET = 1.10
SUMMARY = re.compile(r"segmented (\d+), skipped (\d+) .*, failed (\d+) of (\d+) images in ([0-9.]+) s")


def make_data(folder):
    """Write the images and the deploy net's random weights into ``folder``; return (model, weights, images)."""
    from PIL import Image
    import crfrnn_np as cn
    model = os.path.join(REPO_ROOT, "models", "crfrnn_deploy.prototxt")
    net = cn.Net(model, phase="TEST")
    random_params(net, seed=11, skip_types=("MultiStageMeanfield",))
    weights = os.path.join(folder, "deploy_random.caffemodel")
    net.save(weights)
    del net
    images = os.path.join(folder, "images")
    os.makedirs(images)
    with Image.open(os.path.join(REPO_ROOT, "models", "demo", "image.png")) as im:
        rgb = np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
    for k in range(IMAGES):
        shifted = np.roll(rgb, (37 * k, 53 * k), axis=(0, 1))
        Image.fromarray(shifted).save(os.path.join(images, "img%02d.png" % k))
    return model, weights, images


def segment(model, weights, images, out, *extra):
    """Seconds of one ``crfrnn segment --images`` run (from its summary line)."""
    cmd = [sys.executable, "-m", "crfrnn_np.tools.main", "segment", "--model", model, "--weights", weights,
           "--images", images, "--output-dir", out, "--overwrite"] + list(extra)
    proc = subprocess.run(cmd, env=thread_env(os.cpu_count() or 1), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=3600)
    found = SUMMARY.search(proc.stdout)
    if proc.returncode != 0 or not found or int(found.group(1)) != IMAGES:
        raise RuntimeError("segment %s failed (exit %d):\n%s" % (" ".join(extra), proc.returncode,
                                                                 (proc.stdout + proc.stderr)[-3000:]))
    return float(found.group(5))


def same_outputs(a, b):
    names = sorted(os.listdir(a))
    return names == sorted(os.listdir(b)) and all(
        open(os.path.join(a, n), "rb").read() == open(os.path.join(b, n), "rb").read() for n in names)


def main():
    from distributed import Client, LocalCluster
    work = tempfile.mkdtemp(prefix="crfrnn_bench_datasets_")
    try:
        model, weights, images = make_data(work)
        print("  deploy net, random weights, %d images of %dx%d, %d cores" % (IMAGES, SIZE, SIZE,
                                                                           os.cpu_count() or 1))
        one = os.path.join(work, "one")
        t1 = segment(model, weights, images, one)
        print("  --workers 1: %.1f s, %.3f images/s" % (t1, IMAGES / t1))
        pool, dask = [], []
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                          host="127.0.0.1") as cluster, Client(cluster) as client:
            for _ in range(ROUNDS):
                out = os.path.join(work, "pool")
                pool.append(segment(model, weights, images, out, "--workers", "2"))
                assert same_outputs(one, out), "--workers 2 outputs differ from --workers 1"
                client.restart()
                out = os.path.join(work, "dask")
                dask.append(segment(model, weights, images, out, "--scheduler", cluster.scheduler_address))
                assert same_outputs(one, out), "--scheduler outputs differ from --workers 1"
        print("  --workers 2: %s s (best %.1f s, %.3f images/s)" % (" ".join("%.1f" % t for t in pool), min(pool),
                                                                   IMAGES / min(pool)))
        print("  --scheduler (dask, 2 worker processes x 1 thread): %s s (best %.1f s, %.3f images/s)"
              % (" ".join("%.1f" % t for t in dask), min(dask), IMAGES / min(dask)))
        ratio = min(dask) / min(pool)
        print("  outputs identical for all runs; dask / pool = %.3f (target <= %.2f: %s)"
              % (ratio, TARGET, "met" if ratio <= TARGET else "MISSED"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
