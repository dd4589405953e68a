"""The ``cuda`` backend on a real GPU against our own CPU backend, in the same run (issue 10).

``python -m bench.bench_cuda`` (or ``python -m bench cuda``). Without a CUDA GPU (no driver or device, or the
simulator on) it prints one line saying it is skipped and returns: the simulator would take hours at these
sizes and says nothing about speed.

Three parts, each on the same inputs on both backends, float32, TEST phase, random He-normal weights
(:func:`bench.common.random_params`, seeded):

1. **The CRF layer**: ``MultiStageMeanfield`` at 500 x 500 x 21, T = 10 (:func:`bench.bench_crf.meanfield_prototxt`,
   the demo photograph and its upsampled unary), lattices rebuilt in every timed run. Target: the GPU
   >= 20 x faster than our CPU.
   Then the same layer with ``engine: FUSED`` on the GPU alone (DEFAULT there is STEPS), against STEPS:
   whether the fused device path is the faster one.
2. **The FCN part alone** (FCN-8s, :func:`bench.bench_fcn.fcn8s_model`) at 1 x 3 x 500 x 500.
3. **The whole deploy net** ``models/crfrnn_deploy.prototxt`` at 1 x 3 x 500 x 500. Target: <= 0.05 s per
   image on an H200 (the published Caffe GPU figure: 0.4 s on a Titan X).

GPU times are CUDA events around ``net.forward`` (which returns host arrays, so the events bracket the whole
forward including the output copy), best of ``BENCH_CUDA_REPEAT`` (default 5) after ``BENCH_CUDA_WARMUP``
(default 2) untimed runs, the first of which compiles the kernels. CPU times are wall clock on
``BENCH_THREADS`` (default 2) threads, best of ``BENCH_CUDA_CPU_REPEAT`` (default 1) after one warm-up at
48 x 48: the CPU side dominates the run time (about a minute for the three parts on two cores), so the whole
bench stays within five minutes on a lent machine. Outputs of the two backends are compared (max abs
difference over max abs of the CPU output).

``BENCH_CUDA_SIZE`` (default 500) changes the image size of all three parts.
"""
import os
import time

import numpy as np

from bench.common import best_of, fmt_times, random_params, verdict

CRF_SPEEDUP_TARGET = 20.0
DEPLOY_TARGET_S = 0.05
WARMUP_SIZE = 48


def cuda_event_time(fn, repeat, warmup):
    """Best of ``repeat`` timings of ``fn()`` by CUDA events, after ``warmup`` untimed calls; (best, times) s."""
    from numba import cuda
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start, end = cuda.event(), cuda.event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return min(times), times


def _relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def _nets(param, fill):
    """The same net on both backends with the same random weights: ``{"cpu": net, "cuda": net}``."""
    import crfrnn_np
    nets = {}
    weights = None
    for backend in ("cpu", "cuda"):
        net = crfrnn_np.Net(param, phase="TEST", dtype="float32", backend=backend)
        if fill:
            if weights is None:
                weights = random_params(net, 1701, skip_types=("MultiStageMeanfield",))
            else:
                for name, arrays in weights.items():
                    for blob, a in zip(net.params[name], arrays):
                        blob.data[...] = a
        net.params_to_device()             # after the host writes (nothing on the cpu backend)
        nets[backend] = net
    return nets


def _compare(label, nets, inputs, warm_inputs, cpu_repeat, repeat, warmup):
    """Time one forward per backend on ``inputs`` (dict of arrays); print and return the figures."""
    crfs = [layer for net in nets.values() for layer in net.layers if hasattr(layer, "cache")]

    def forward(backend, feed):
        for layer in crfs:
            layer.cache.clear()
        return nets[backend].forward(**feed)

    forward("cpu", warm_inputs)
    cpu_best, cpu_times = best_of(lambda: forward("cpu", inputs), repeat=cpu_repeat, warmup=0)
    cpu_out = forward("cpu", inputs)
    gpu_best, gpu_times = cuda_event_time(lambda: forward("cuda", inputs), repeat, warmup)
    gpu_out = forward("cuda", inputs)
    errors = {name: _relative(gpu_out[name], cpu_out[name]) for name in cpu_out}
    print("  %s: cpu %.3f s %s, cuda %.4f s %s, speed-up %.1f x; max relative difference %s"
          % (label, cpu_best, fmt_times(cpu_times), gpu_best, fmt_times(gpu_times), cpu_best / gpu_best,
             ", ".join("%s %.1e" % kv for kv in errors.items())), flush=True)
    return {"cpu": cpu_best, "cuda": gpu_best, "speedup": cpu_best / gpu_best, "errors": errors}


def main():
    from crfrnn_np.backend import real_gpu_present
    if not real_gpu_present():
        print("bench_cuda: skipped: numba.cuda finds no CUDA GPU here (no driver or device); run it on a "
              "machine with one", flush=True)
        return None
    from crfrnn_np import proto
    from crfrnn_np.threads import set_num_threads
    from bench.bench_crf import DEPLOY_PROTOTXT, demo_image, demo_unary, meanfield_prototxt
    from bench.bench_fcn import fcn8s_model

    size = int(os.environ.get("BENCH_CUDA_SIZE", "500"))
    repeat = int(os.environ.get("BENCH_CUDA_REPEAT", "5"))
    warmup = int(os.environ.get("BENCH_CUDA_WARMUP", "2"))
    cpu_repeat = int(os.environ.get("BENCH_CUDA_CPU_REPEAT", "1"))
    set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    from crfrnn_np.backend import device_info
    name, cc, free, total = device_info()
    print("  device: %s (compute capability %d.%d, %.0f of %.0f GB free)" % (name, cc[0], cc[1], free / 1e9,
                                                                           total / 1e9), flush=True)
    t0 = time.perf_counter()
    results = {}

    image, unary = demo_image(size)[None], demo_unary(size)[None]
    w_image, w_unary = demo_image(WARMUP_SIZE)[None], demo_unary(WARMUP_SIZE)[None]
    crf_inputs = {"unary": unary, "Q0": unary, "data": image}
    crf_warm = {"unary": w_unary, "Q0": w_unary, "data": w_image}
    nets = _nets(proto.parse(meanfield_prototxt(size)), fill=False)
    crf = _compare("CRF layer %dx%dx21, T=10" % (size, size), nets, crf_inputs, crf_warm, cpu_repeat, repeat,
                   warmup)
    print("    CRF speed-up %.1f x (target >= %.0f x: %s)"
          % (crf["speedup"], CRF_SPEEDUP_TARGET, verdict(CRF_SPEEDUP_TARGET / crf["speedup"], 1.0)))
    results["crf"] = crf
    # the FUSED engine on the device (DEFAULT there is STEPS, the step layers): is the fused path faster?
    import crfrnn_np
    fused = crfrnn_np.Net(proto.parse(meanfield_prototxt(size, engine="FUSED")), phase="TEST", dtype="float32",
                          backend="cuda")
    fused_best, fused_times = cuda_event_time(lambda: fused.forward(**crf_inputs), repeat, warmup)
    difference = _relative(fused.forward(**crf_inputs)["pred"], nets["cuda"].forward(**crf_inputs)["pred"])
    print("    CRF layer, FUSED engine on the GPU: %.4f s %s, %.2f x the STEPS engine's %.4f s; max relative "
          "difference %.1e" % (fused_best, fmt_times(fused_times), crf["cuda"] / fused_best, crf["cuda"],
                               difference), flush=True)
    results["crf_fused"] = {"cuda": fused_best, "speedup_over_steps": crf["cuda"] / fused_best,
                            "difference": difference}
    del nets
    fused = None                     # its device buffers, before the next part allocates its own

    fcn_param, source = fcn8s_model()
    nets = _nets(fcn_param, fill=True)
    results["fcn"] = _compare("FCN-8s part (%s) 1x3x%dx%d" % (os.path.basename(source), size, size), nets,
                              {"data": image}, {"data": w_image}, cpu_repeat, repeat, warmup)
    del nets

    nets = _nets(proto.read_net(DEPLOY_PROTOTXT), fill=True)
    deploy = _compare("deploy net 1x3x%dx%d" % (size, size), nets, {"data": image}, {"data": w_image},
                      cpu_repeat, repeat, warmup)
    print("    deploy net on the GPU %.4f s per image (target <= %.2f s: %s)"
          % (deploy["cuda"], DEPLOY_TARGET_S, verdict(deploy["cuda"] / DEPLOY_TARGET_S, 1.0)))
    results["deploy"] = deploy
    print("  bench_cuda total %.0f s" % (time.perf_counter() - t0))
    return results


if __name__ == "__main__":
    main()
