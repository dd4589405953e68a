"""``crfrnn``: the command line, mirroring Caffe's ``caffe`` tool.

Verbs (one module each in this package, with ``add_parser(subparsers)`` and ``run(args) -> int``):
``test``, ``time``, ``train``, ``segment``, ``evaluate``, ``gradcheck``, ``unroll``, ``trace``, ``demo``. Every problem a
user can cause prints one line ``crfrnn: error: <message>`` on stderr and exits with status 1; never a traceback.
"""
import argparse
import importlib
import sys

from crfrnn_np.errors import Error

VERBS = ["train", "test", "time", "segment", "evaluate", "gradcheck", "unroll", "trace", "demo"]


def add_common(parser):
    """Options every verb takes."""
    parser.add_argument("--backend", choices=["cpu", "cuda"], default="cpu",
                        help="where to run: numpy/numba on the CPU (default) or numba.cuda")


def build_parser():
    parser = argparse.ArgumentParser(prog="crfrnn", description="CRF-as-RNN in NumPy/Numba, Caffe-style tools")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb in VERBS:
        try:
            module = importlib.import_module("crfrnn_np.tools." + verb)
        except ImportError as exc:                 # a broken verb is an error, not a verb missing from the help
            raise Error("the '%s' command cannot be loaded: %s (a dependency missing from this installation?)"
                        % (verb, exc)) from exc
        p = module.add_parser(sub)
        add_common(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    try:
        parser = build_parser()
    except Error as e:
        print("crfrnn: error: %s" % e, file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    try:
        if args.backend == "cuda":
            # before any file is read or any work done: no GPU (nor the simulator), or float64 on a device
            # without it, is one line and exit status 1
            from crfrnn_np.backend import check_cuda
            check_cuda(getattr(args, "dtype", None))
        return int(args._run(args) or 0)
    except (Error, OSError) as e:
        print("crfrnn: error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("crfrnn: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("crfrnn: error: out of memory", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
