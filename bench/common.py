"""Helpers shared by the benchmarks: timing, peak memory, and running a measurement in a fresh process.

Memory is measured per process on Linux:

* :func:`rss_bytes` is the resident set size now (``VmRSS`` of ``/proc/self/status``);
* :func:`peak_rss_bytes` is the high-water mark, ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux);
* :func:`reset_peak_rss` lowers the high-water mark to the current RSS (``echo 5 > /proc/self/clear_refs``,
  Linux >= 4.0), so that a peak read after a call belongs to that call and not to anything before it.

:func:`measure_peak` combines them: the working memory of ``fn()`` is ``peak - rss_before``.

A process started with ``vfork`` (Python's ``subprocess`` uses it) inherits its parent's high-water mark in
``ru_maxrss``; :func:`reset_peak_rss` removes that too, and every framework is measured in its own fresh
interpreter (:func:`run_worker`) so that no library, weight or buffer of another one is resident.
"""
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback

#: Environment variables that bound the thread pools of OpenBLAS, OpenMP, MKL and numba.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def anchors_dir():
    """The shared anchors folder (``CRFRNN_ANCHORS`` or ``../shared/anchors`` beside the repository)."""
    env = os.environ.get("CRFRNN_ANCHORS")
    if env:
        return env
    return os.path.join(os.path.dirname(REPO_ROOT), "shared", "anchors")


# ---- time ----------------------------------------------------------------------------------------------------

def best_of(fn, repeat=3, warmup=1):
    """Run ``fn()`` ``warmup`` times untimed, then ``repeat`` times timed.

    Returns
    -------
    best : float
        The shortest of the timed runs, in seconds.
    times : list of float
        All timed runs, in seconds, in order.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times


# ---- memory --------------------------------------------------------------------------------------------------

def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError("%s not in /proc/self/status" % field)


def rss_bytes():
    """Resident set size of this process now, in bytes."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes():
    """High-water mark of the resident set size (``ru_maxrss``), in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss():
    """Lower the high-water mark to the current RSS; return False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def measure_peak(fn):
    """Call ``fn()`` once and return its result with its peak working memory.

    Returns
    -------
    result : object
        What ``fn()`` returned.
    mem : dict
        ``rss_before`` (bytes resident right before the call), ``peak`` (``ru_maxrss`` after the call),
        ``delta`` = ``peak - rss_before``, ``rss_after``, and ``reset`` (whether the high-water mark could be
        lowered to ``rss_before`` first; if not, ``peak`` may belong to something earlier and ``delta`` is an
        upper bound).
    """
    reset = reset_peak_rss()
    before = rss_bytes()
    result = fn()
    peak = peak_rss_bytes()
    return result, {"rss_before": before, "peak": peak, "delta": peak - before, "rss_after": rss_bytes(),
                    "reset": reset}


def mib(nbytes):
    """``nbytes`` in MiB (float)."""
    return nbytes / 2.0**20


# ---- fresh-process workers -----------------------------------------------------------------------------------

def fmt_times(times):
    """``"2.33, 2.03, 2.18"``: every timed run, for the report lines."""
    return ", ".join("%.2f" % t for t in times)


def verdict(ratio, target):
    """``"met"`` when ``ratio <= target``, else ``"NOT met"``."""
    return "met" if ratio <= target else "NOT met"


def thread_env(threads):
    """A copy of ``os.environ`` with every thread-pool variable set to ``threads``.

    ``MALLOC_MMAP_THRESHOLD_`` is fixed at 128 KiB: glibc otherwise raises its mmap threshold after large
    blocks are freed, and memory freed before a measurement (a warm-up) then stays resident and is silently
    reused, hiding later allocations from the RSS.
    """
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_worker(target, kwargs, threads=2, timeout=1800):
    """Run ``target(**kwargs)`` in a fresh interpreter and return what it returned (JSON-serialisable).

    Parameters
    ----------
    target : str
        ``"module:function"``, e.g. ``"bench.bench_fcn:run_ours"``.
    kwargs : dict
        JSON-serialisable keyword arguments.
    threads : int
        Thread-pool size given to the child through :data:`THREAD_VARS`.
    timeout : float
        Seconds before the child is killed.

    Raises
    ------
    RuntimeError
        When the child fails; the message holds the tail of its output.
    """
    with tempfile.TemporaryDirectory(prefix="crfrnn-bench-") as tmp:
        result_path = os.path.join(tmp, "result.json")
        cmd = [sys.executable, "-m", "bench.common", target, json.dumps(kwargs), result_path]
        proc = subprocess.run(cmd, env=thread_env(threads), cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0 or not os.path.exists(result_path):
            tail = (proc.stdout + proc.stderr)[-4000:]
            raise RuntimeError("worker %s failed (exit status %d):\n%s" % (target, proc.returncode, tail))
        with open(result_path) as f:
            return json.load(f)


def _worker_main(argv):
    target, kwargs, result_path = argv
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        result = func(**json.loads(kwargs))
    except Exception:
        traceback.print_exc()
        return 1
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))


def random_params(net, seed, skip_types=()):
    """Fill every parameter blob of ``net`` (layers of ``skip_types`` keep theirs): He-normal weights
    (fan-in = C_in * k * k of the product computed, divided by stride^2 for a deconvolution), biases
    N(0, 0.01^2). Returns {layer name: [arrays]} of the filled layers."""
    import numpy as np
    rng = np.random.default_rng(seed)
    params = {}
    for name, blobs in net.params.items():
        layer = net.layer_dict[name]
        if layer.type in skip_types:
            continue
        w = blobs[0].data
        if layer.type == "Deconvolution":
            stride = int(np.prod(layer.stride))
            fan_in = w.shape[0] * int(np.prod(w.shape[2:])) / stride
        else:
            fan_in = int(np.prod(w.shape[1:]))
        w[...] = rng.standard_normal(w.shape) * np.sqrt(2.0 / fan_in)
        if len(blobs) > 1:
            blobs[1].data[...] = rng.standard_normal(blobs[1].shape) * 0.01
        params[name] = [b.data for b in blobs]
    return params
