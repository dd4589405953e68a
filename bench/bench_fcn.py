"""FCN-8s forward on the CPU, crfrnn_np against PyTorch (issue 2, "Speed").

The net is the FCN-8s part of the published CRF-RNN deploy net (spec crfasrnn.md §4.2, layers 1-48, up to
the ``coarse`` crop): the anchor ``crfasrnn/TVG_CRFRNN_new_deploy.prototxt`` truncated after that crop when
the anchors are present, else ``bench/fcn8s.prototxt`` (the same table, written out). Random weights
(He-normal, seeded), input 1x3xSxS (S = 500) uniform in [-128, 128), float32, 2 threads everywhere.

Each framework runs in its own fresh interpreter (:func:`bench.common.run_worker`):

1. build the model with its weights (ours: ``crfrnn_np.Net``, filled here and saved to a ``.npz``; torch:
   :class:`bench.fcn8s_torch.FCN8s`, built and loaded from that ``.npz``, which is then dropped);
2. one forward at 1x3x64x64 to load compiled kernels and initialise the libraries (ours on a separate
   throw-away Net, deleted before the measured one is built, so none of its blobs or column buffers is
   resident; torch keeps nothing between forwards);
3. the first full-size forward under :func:`bench.common.measure_peak`: peak RSS minus RSS right before it
   (our Net allocates its blobs there; torch allocates and frees its activations there);
4. ``repeat`` more forwards after one warm-up; the best time counts.

The two workers run ``rounds`` times, alternating (ours, torch, ours, torch, ...), so that a change in the
load of the machine hits both; the best time over all rounds counts, the memory of the first round.

Targets: time ours/torch <= 1.3, forward peak memory ours/torch <= 1.5. The two ``coarse`` outputs are
compared (max abs difference over max abs of torch's output).

Environment: ``BENCH_REPEAT`` (timed runs per round, default 3), ``BENCH_ROUNDS`` (default 2),
``BENCH_FCN_SIZE`` (default 500), ``BENCH_THREADS`` (default 2).
"""
import gc
import os
import tempfile

import numpy as np

from bench.common import (anchors_dir, best_of, fmt_times, measure_peak, mib, random_params, rss_bytes, run_worker,
                          verdict)

TIME_TARGET = 1.3
MEMORY_TARGET = 1.5
WARMUP_SIZE = 64
HERE = os.path.dirname(os.path.abspath(__file__))


def fcn8s_model():
    """``(NetParameter, source)`` of the FCN-8s part of the deploy net (layers 1-48)."""
    from crfrnn_np import proto
    anchor = os.path.join(anchors_dir(), "crfasrnn", "TVG_CRFRNN_new_deploy.prototxt")
    if not os.path.exists(anchor):
        path = os.path.join(HERE, "fcn8s.prototxt")
        return proto.read_net(path), path
    param = proto.read_net(anchor)
    ends = [i for i, lp in enumerate(param.layer) if "coarse" in list(lp.top)]
    if len(ends) != 1:
        raise RuntimeError("%s: expected one layer with top 'coarse', found %d" % (anchor, len(ends)))
    del param.layer[ends[0] + 1:]
    param.force_backward = False
    return param, anchor + " (layers up to 'coarse')"


def _input(size, seed):
    return np.random.default_rng(seed + 1).uniform(-128, 128, (1, 3, size, size)).astype(np.float32)


def _measure(forward, full_input, repeat):
    """Steps 3-4 of the module docstring; ``forward(x)`` returns the output array."""
    out, mem = measure_peak(lambda: np.array(forward(full_input), copy=True))
    best, times = best_of(lambda: forward(full_input), repeat=repeat, warmup=1)
    return out, mem, best, times


def run_ours(workdir, size, repeat, seed, threads, keep_blobs=True):
    """Worker: crfrnn_np's forward. Writes ``weights.npz``, ``input.npy``, ``ours.npy`` into ``workdir``.

    ``keep_blobs=False`` builds the net in its inference-only mode (intermediate blobs freed after their last
    consumer), the fair counterpart of a framework without autograd for the memory comparison.
    """
    rss_start = rss_bytes()
    import crfrnn_np
    from crfrnn_np.threads import set_num_threads
    set_num_threads(threads)
    rss_imported = rss_bytes()
    param, source = fcn8s_model()
    warm = crfrnn_np.Net(param, phase="TEST", dtype="float32")
    warm.forward(data=_input(WARMUP_SIZE, seed))
    del warm
    gc.collect()
    net = crfrnn_np.Net(param, phase="TEST", dtype="float32", keep_blobs=keep_blobs)
    params = random_params(net, seed)
    np.savez(os.path.join(workdir, "weights.npz"),
             **{"%s/%d" % (name, i): a for name, arrays in params.items() for i, a in enumerate(arrays)})
    del params
    weight_bytes = sum(b.data.nbytes for blobs in net.params.values() for b in blobs)
    full = _input(size, seed)
    np.save(os.path.join(workdir, "input.npy"), full)
    out_name = net.outputs[0]

    def forward(x):
        return net.forward(data=x)[out_name]

    out, mem, best, times = _measure(forward, full, repeat)
    np.save(os.path.join(workdir, "ours.npy"), out)
    blob_bytes = sum(b.data.nbytes for b in {id(b): b for b in net.blobs.values()}.values()
                     if b.has_data())
    col_bytes = sum(getattr(getattr(layer, "_geometry", None), "_buffer", None).nbytes
                    for layer in net.layers
                    if getattr(getattr(layer, "_geometry", None), "_buffer", None) is not None)
    return {"source": source, "best": best, "times": times, "mem": mem, "rss_start": rss_start,
            "rss_imported": rss_imported, "weight_bytes": weight_bytes, "blob_bytes": blob_bytes,
            "col_buffer_bytes": col_bytes, "out_shape": list(out.shape), "version": crfrnn_np.__version__
            if hasattr(crfrnn_np, "__version__") else "?"}


def run_torch(workdir, size, repeat, seed, threads):
    """Worker: the same net in PyTorch, weights from ``weights.npz``; writes ``torch.npy``."""
    import torch
    rss_start = rss_bytes()
    from bench.fcn8s_torch import FCN8s
    torch.set_num_threads(threads)
    rss_imported = rss_bytes()
    model = FCN8s().eval()
    with np.load(os.path.join(workdir, "weights.npz")) as z:
        params = {}
        for key in z.files:
            name, i = key.rsplit("/", 1)
            params.setdefault(name, {})[int(i)] = z[key]
        model.load_caffe_params({n: [d[i] for i in sorted(d)] for n, d in params.items()})
        del params
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    full = torch.from_numpy(np.load(os.path.join(workdir, "input.npy")))

    def forward(x):
        with torch.no_grad():
            return model(x).numpy()

    forward(torch.from_numpy(_input(WARMUP_SIZE, seed)))
    gc.collect()
    out, mem, best, times = _measure(forward, full, repeat)
    np.save(os.path.join(workdir, "torch.npy"), out)
    return {"best": best, "times": times, "mem": mem, "rss_start": rss_start, "rss_imported": rss_imported,
            "weight_bytes": weight_bytes, "out_shape": list(out.shape), "version": torch.__version__,
            "threads": torch.get_num_threads()}


def main():
    """Run both workers, print times, ratio, memory and agreement; raise if a run fails or outputs differ."""
    repeat = int(os.environ.get("BENCH_REPEAT", "3"))
    size = int(os.environ.get("BENCH_FCN_SIZE", "500"))
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "2"))
    seed = 1701
    print("FCN-8s forward (CRF-RNN deploy layers 1-48), input 1x3x%dx%d float32, %d threads, best of %d"
          " (%d rounds of %d, frameworks alternating in fresh processes)"
          % (size, size, threads, repeat * rounds, rounds, repeat))
    with tempfile.TemporaryDirectory(prefix="crfrnn-bench-fcn-") as tmp:
        kwargs = {"workdir": tmp, "size": size, "repeat": repeat, "seed": seed, "threads": threads}
        ours = run_worker("bench.bench_fcn:run_ours", kwargs, threads=threads)
        print("  net: %s" % ours["source"])
        theirs = run_worker("bench.bench_fcn:run_torch", kwargs, threads=threads)
        a = np.load(os.path.join(tmp, "ours.npy"))
        b = np.load(os.path.join(tmp, "torch.npy"))
        for _ in range(rounds - 1):
            for result, target in ((ours, "run_ours"), (theirs, "run_torch")):
                again = run_worker("bench.bench_fcn:" + target, kwargs, threads=threads)
                result["times"] += again["times"]
                result["best"] = min(result["times"])
        lean = run_worker("bench.bench_fcn:run_ours", dict(kwargs, repeat=1, keep_blobs=False), threads=threads)
    ratio = ours["best"] / theirs["best"]
    print("  time   crfrnn_np  %7.3f s  (runs: %s)" % (ours["best"], fmt_times(ours["times"])))
    print("  time   torch %-5s %7.3f s  (runs: %s)" % (theirs["version"].split("+")[0], theirs["best"],
                                                       fmt_times(theirs["times"])))
    print("  time ratio ours/torch: %.2f  (target <= %.1f: %s)"
          % (ratio, TIME_TARGET, verdict(ratio, TIME_TARGET)))
    mo, mt = ours["mem"], theirs["mem"]
    mratio = mo["delta"] / mt["delta"]
    for label, r in (("crfrnn_np", ours), ("torch    ", theirs)):
        m = r["mem"]
        print("  memory %s forward peak %7.1f MiB over %7.1f MiB resident before it "
              "(weights %6.1f MiB; process peak %7.1f MiB)"
              % (label, mib(m["delta"]), mib(m["rss_before"]), mib(r["weight_bytes"]), mib(m["peak"])))
    print("  memory ratio ours/torch (forward peak): %.2f  (target <= %.1f: %s)"
          % (mratio, MEMORY_TARGET, verdict(mratio, MEMORY_TARGET)))
    lratio = lean["mem"]["delta"] / mt["delta"]
    print("  memory crfrnn_np keep_blobs=False (inference mode) forward peak %7.1f MiB: ratio ours/torch %.2f"
          "  (target <= %.1f: %s)" % (mib(lean["mem"]["delta"]), lratio, MEMORY_TARGET,
                                      verdict(lratio, MEMORY_TARGET)))
    wratio = (mo["peak"] - ours["rss_imported"]) / (mt["peak"] - theirs["rss_imported"])
    print("  memory ratio ours/torch (weights + forward, over the RSS after imports): %.2f" % wratio)
    print("  crfrnn_np keeps %.1f MiB of blobs and %.1f MiB of im2col buffers after the forward"
          % (mib(ours["blob_bytes"]), mib(ours["col_buffer_bytes"])))
    if not (mo["reset"] and mt["reset"]):
        print("  note: the RSS high-water mark could not be reset; the peaks are upper bounds")
    scale = float(np.abs(b).max())
    diff = float(np.abs(a - b).max())
    rel = diff / scale if scale else diff
    print("  outputs %s: max |ours - torch| = %.3g, output scale max|torch| = %.3g, relative %.2e"
          % ("x".join(map(str, a.shape)), diff, scale, rel))
    if a.shape != b.shape or not rel < 1e-3:
        raise AssertionError("crfrnn_np and torch disagree: shapes %s / %s, relative difference %.3g"
                             % (a.shape, b.shape, rel))
    return {"ratio": ratio, "memory_ratio": mratio, "lean_memory_ratio": lratio, "relative_diff": rel}


def profile_ours(size=500, seed=1701, threads=2):
    """Per-layer forward times of our net after one warm-up forward; convolutions split into im2col, bias
    and the rest (the GEMMs). Prints a table and returns ``{layer name: seconds}``.

    Run as ``python -m bench.bench_fcn --profile [SIZE]`` (set ``OPENBLAS_NUM_THREADS`` to the thread count).
    """
    import collections
    import time

    import crfrnn_np
    from crfrnn_np.layers import conv as conv_module
    from crfrnn_np.threads import set_num_threads

    set_num_threads(threads)
    parts = collections.defaultdict(float)
    current = [None]
    geometry_im2col = conv_module.ConvGeometry._im2col
    layer_add_bias = conv_module.BaseConvolution._add_bias

    def timed_im2col(geo, *args):
        t0 = time.perf_counter()
        out = geometry_im2col(geo, *args)
        parts[current[0], "im2col"] += time.perf_counter() - t0
        return out

    def timed_bias(layer, top):
        t0 = time.perf_counter()
        layer_add_bias(layer, top)
        parts[current[0], "bias"] += time.perf_counter() - t0

    param, _ = fcn8s_model()
    net = crfrnn_np.Net(param, phase="TEST", dtype="float32")
    random_params(net, seed)
    x = _input(size, seed)
    net.forward(data=x)
    conv_module.ConvGeometry._im2col = timed_im2col
    conv_module.BaseConvolution._add_bias = timed_bias
    try:
        times = collections.OrderedDict()
        for i, layer in enumerate(net.layers):
            current[0] = net.layer_names[i]
            t0 = time.perf_counter()
            layer.forward(net.bottom_vecs[i], net.top_vecs[i])
            times[i] = time.perf_counter() - t0
    finally:
        conv_module.ConvGeometry._im2col = geometry_im2col
        conv_module.BaseConvolution._add_bias = layer_add_bias
    total = sum(times.values())
    by_type = collections.defaultdict(float)
    print("%-12s %-14s %8s %8s %8s %8s" % ("layer", "type", "total s", "im2col", "bias", "rest"))
    for i, t in times.items():
        name, kind = net.layer_names[i], net.layers[i].type
        by_type[kind] += t
        im, bias = parts.get((name, "im2col"), 0.0), parts.get((name, "bias"), 0.0)
        if t >= 0.001 * total:
            print("%-12s %-14s %8.3f %8.3f %8.3f %8.3f" % (name, kind, t, im, bias, t - im - bias))
    im_total = sum(v for k, v in parts.items() if k[1] == "im2col")
    bias_total = sum(v for k, v in parts.items() if k[1] == "bias")
    print("forward total %.3f s; im2col %.3f s, bias %.3f s, convolution GEMMs %.3f s"
          % (total, im_total, bias_total, by_type["Convolution"] - im_total - bias_total))
    print("by type: " + ", ".join("%s %.3f" % kv for kv in sorted(by_type.items(), key=lambda kv: -kv[1])))
    return {net.layer_names[i]: t for i, t in times.items()}


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "--profile":
        profile_ours(int(sys.argv[2]) if len(sys.argv) > 2 else 500)
    else:
        main()
