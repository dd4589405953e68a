"""bench_coldstart: the first ``crfrnn demo`` on a fresh environment (empty numba cache) and a warm one.

Issue 9, "The first run is fast": a student's first ``crfrnn demo`` compiles the numba kernels it uses.
Each cold run starts ``crfrnn demo`` in a fresh interpreter with ``NUMBA_CACHE_DIR`` pointing at a new empty
folder, so nothing is cached; the warm runs reuse that folder. Wall times of the whole command (interpreter
start, imports, compiling, the run, writing the pictures).

Targets: cold <= 12 s on the project's 2-core machine; warm unchanged (about 1.5 s there).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

COLD_RUNS = 2
WARM_RUNS = 5
COLD_TARGET = 12.0


def run_demo(cache_dir, output):
    """Seconds of one ``crfrnn demo`` in a fresh interpreter, and its standard error (the stage times)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "crfrnn_np.tools.main", "demo", "--output", output], env=env,
                          capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError("crfrnn demo failed:\n" + proc.stdout + proc.stderr)
    return elapsed, proc.stderr


def main():
    work = tempfile.mkdtemp(prefix="crfrnn_coldstart_")
    try:
        output = os.path.join(work, "demo_panel.png")
        cold = []
        for k in range(COLD_RUNS):
            cache = os.path.join(work, "cache%d" % k)
            os.makedirs(cache)
            seconds, stages = run_demo(cache, output)
            cold.append(seconds)
            print("  cold run %d: %.2f s" % (k + 1, seconds))
            print("    " + stages.strip().replace("\n", "\n    "))
        warm = [run_demo(cache, output)[0] for _ in range(WARM_RUNS)]
        print("  warm runs: %s s (best %.2f s)" % (" ".join("%.2f" % w for w in warm), min(warm)))
        verdict = "met" if min(cold) <= COLD_TARGET else "MISSED"
        print("  cold first demo: best %.2f s of %d (target <= %.0f s: %s)" % (min(cold), COLD_RUNS, COLD_TARGET,
                                                                            verdict))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
