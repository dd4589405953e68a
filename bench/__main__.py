"""``python -m bench``: run every ``bench/bench_*.py`` that defines ``main()``, in name order, one after another.

A bench that raises prints its error and the harness goes on with the next one; the exit status is 1 when any
failed. ``python -m bench fcn crf`` runs only the benches whose module name contains one of the words.
"""
import importlib
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def bench_modules():
    """Names (``bench_*``) of the bench modules present in this folder, sorted."""
    return sorted(f[:-3] for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    names = [n for n in bench_modules() if not argv or any(word in n for word in argv)]
    failed = []
    ran = 0
    for name in names:
        try:
            module = importlib.import_module("bench." + name)
        except Exception:
            print("== %s: import failed" % name, flush=True)
            traceback.print_exc(file=sys.stdout)
            failed.append(name)
            continue
        entry = getattr(module, "main", None)
        if not callable(entry):
            continue
        ran += 1
        print("== %s" % name, flush=True)
        t0 = time.perf_counter()
        try:
            entry()
        except Exception:
            traceback.print_exc(file=sys.stdout)
            failed.append(name)
            print("== %s FAILED (%.1f s)" % (name, time.perf_counter() - t0), flush=True)
        else:
            print("== %s done (%.1f s)" % (name, time.perf_counter() - t0), flush=True)
        sys.stdout.flush()
    print("%d bench(es) run, %d failed%s" % (ran, len(failed), (": " + ", ".join(failed)) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
