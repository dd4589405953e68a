"""Permutohedral lattice speed and memory, side by side with pydensecrf2 in one run.

``python -m bench.bench_lattice`` (or ``python -m bench lattice``). numba runs on 2 threads.

1. 500 x 500, 21 channels, deploy bandwidths (theta_alpha = 160, theta_beta = 3; theta_gamma = 3):
   build of the bilateral lattice + 10 filter calls (crfrnn_np, ``backend="cpu"``) against pydensecrf
   building the same kernel (``addPairwiseEnergy(..., DIAG_KERNEL, NORMALIZE_AFTER)``) and running 10
   mean-field iterations with it. Goal: ratio <= 0.5. Each side is timed 3 times, interleaved, best kept.
2. Build / splat / blur / slice separately, for the bilateral and the spatial lattice.
3. Scaling from 250^2 to 1000^2 (build and one 21-channel filter, ns per pixel: flat = linear in N).
4. Memory held by the lattices at 500^2.

The image is synthetic and deterministic (smooth colour regions with edges and fine texture, in the
range of mean-subtracted BGR), so that the bilateral lattice has a realistic number of vertices.
"""
import time

import numba
import numpy as np

from crfrnn_np.lattice import PermutohedralLattice, bilateral_features, spatial_features
from crfrnn_np import threads
from crfrnn_np.lattice import cpu

CHANNELS = 21
THETA_ALPHA, THETA_BETA, THETA_GAMMA = 160.0, 3.0, 3.0
THREADS = 2
REPEATS = 3


def synthetic_image(height, width, seed=0):
    """(3, H, W) float32: piecewise-constant colour regions (Voronoi cells), a smooth shading and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cells = rng.uniform(0, 1, size=(24, 2)) * (height, width)
    colours = rng.uniform(-110, 130, size=(24, 3)).astype(np.float32)
    dist = (yy[None] - cells[:, 0, None, None]) ** 2 + (xx[None] - cells[:, 1, None, None]) ** 2
    img = colours[np.argmin(dist, axis=0)].transpose(2, 0, 1)
    shade = 20 * np.sin(xx / (0.15 * width)) * np.cos(yy / (0.2 * height))
    return (img + shade[None] + rng.normal(0, 4, size=img.shape)).astype(np.float32)


def best(fn, repeats=REPEATS):
    """(best wall time in seconds, last result)."""
    times = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def ours(features, values, calls=10):
    """Build + ``calls`` filters; returns (build s, filters s)."""
    t0 = time.perf_counter()
    lat = PermutohedralLattice(features, backend="cpu")
    t1 = time.perf_counter()
    for _ in range(calls):
        lat.filter(values)
    return t1 - t0, time.perf_counter() - t1


def pydensecrf_run(dcrf, features, unary, iterations=10):
    """pydensecrf: build the kernel, run ``iterations`` mean-field steps; returns (build s, inference s)."""
    crf = dcrf.DenseCRF(features.shape[0], unary.shape[0])
    crf.setUnaryEnergy(unary)
    feats = np.ascontiguousarray(features.T)
    t0 = time.perf_counter()
    crf.addPairwiseEnergy(feats, compat=5.0, kernel=dcrf.DIAG_KERNEL, normalization=dcrf.NORMALIZE_AFTER)
    t1 = time.perf_counter()
    crf.inference(iterations)
    return t1 - t0, time.perf_counter() - t1


def stages(features, values):
    """Best build, splat, blur and slice times (s) and the lattice."""
    t_build, lat = best(lambda: PermutohedralLattice(features, backend="cpu"))
    arrays = lat._impl.arrays
    t_splat, buf = best(lambda: cpu.splat(values, arrays))
    t_blur, _ = best(lambda: cpu.blur(buf.copy(), arrays))
    t_slice, _ = best(lambda: cpu.slice_(buf, arrays))
    return t_build, t_splat, t_blur, t_slice, lat


def main():
    threads.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    rng = np.random.default_rng(1701)
    # compile (or load the cache) outside the timings
    small = synthetic_image(32, 32)
    PermutohedralLattice(bilateral_features(small, THETA_ALPHA, THETA_BETA)).filter(
        np.ones((CHANNELS, 1024), np.float32))
    PermutohedralLattice(spatial_features(32, 32, THETA_GAMMA)).filter(np.ones((CHANNELS, 1024), np.float32))
    print("kernel threads: %d" % threads.num_threads())

    h = w = 500
    n = h * w
    img = synthetic_image(h, w)
    bil = bilateral_features(img, THETA_ALPHA, THETA_BETA)
    spa = spatial_features(h, w, THETA_GAMMA)
    values = rng.random((CHANNELS, n), dtype=np.float32)

    # 1. against pydensecrf, interleaved
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError:
        dcrf = None
    unary = np.ascontiguousarray(rng.random((CHANNELS, n), dtype=np.float32) * 3)
    runs_ours, runs_theirs = [], []
    for _ in range(REPEATS):
        runs_ours.append(ours(bil, values))
        if dcrf is not None:
            runs_theirs.append(pydensecrf_run(dcrf, bil, unary))
    ob, of = min(runs_ours, key=sum)
    print("\n500x500, %d channels, bilateral (theta_alpha=%g, theta_beta=%g)" % (CHANNELS, THETA_ALPHA, THETA_BETA))
    print("  crfrnn_np   build %7.1f ms + 10 filters %7.1f ms = %7.1f ms" % (1e3 * ob, 1e3 * of, 1e3 * (ob + of)))
    if dcrf is not None:
        tb, ti = min(runs_theirs, key=sum)
        print("  pydensecrf  build %7.1f ms + 10 iterations %7.1f ms = %7.1f ms" % (1e3 * tb, 1e3 * ti, 1e3 * (tb + ti)))
        print("  ratio crfrnn_np / pydensecrf = %.3f (goal <= 0.5)" % ((ob + of) / (tb + ti)))
    else:
        print("  pydensecrf not installed: no ratio")

    # 2. stages
    print("\nstages at 500x500, %d channels (best of %d)" % (CHANNELS, REPEATS))
    print("  %-10s %8s %8s %8s %8s %8s" % ("lattice", "M", "build", "splat", "blur", "slice"))
    memory = {}
    for name, feats in (("bilateral", bil), ("spatial", spa)):
        t_build, t_splat, t_blur, t_slice, lat = stages(feats, values)
        memory[name] = lat.nbytes
        print("  %-10s %8d %6.1fms %6.1fms %6.1fms %6.1fms" % (name, lat.num_vertices, 1e3 * t_build,
                                                             1e3 * t_splat, 1e3 * t_blur, 1e3 * t_slice))

    # 3. scaling
    print("\nscaling (bilateral lattice, one %d-channel filter; ns per pixel)" % CHANNELS)
    print("  %-10s %10s %9s %10s %9s %10s" % ("size", "N", "build", "ns/px", "filter", "ns/px"))
    for side in (250, 500, 750, 1000):
        feats = bilateral_features(synthetic_image(side, side), THETA_ALPHA, THETA_BETA)
        vals = rng.random((CHANNELS, side * side), dtype=np.float32)
        t_build, lat = best(lambda: PermutohedralLattice(feats, backend="cpu"), 2)
        t_filter, _ = best(lambda: lat.filter(vals), 2)
        npx = side * side
        print("  %-10s %10d %7.1fms %10.1f %7.1fms %10.1f" % ("%dx%d" % (side, side), npx, 1e3 * t_build,
                                                              1e9 * t_build / npx, 1e3 * t_filter,
                                                              1e9 * t_filter / npx))

    # 4. memory
    print("\nlattice memory at 500x500: bilateral (d=5) %.1f MB, spatial (d=2) %.1f MB (target <= 100 MB for d=5)"
          % (memory["bilateral"] / 1e6, memory["spatial"] / 1e6))


if __name__ == "__main__":
    main()
