"""``crfrnn train --solver S [--weights W | --snapshot S]``: train a net, as ``caffe train``.

The solver's log lines go to stdout (``Iteration N (x iter/s, ...), loss = L``, ``    Train net output #k:
name = v``, ``Iteration N, lr = r``, ``Iteration N, Testing net (#i)``, ``    Test net output #k: name =
mean``, ``Snapshotting to ...``, ``Optimization Done.``); a progress indicator goes to stderr (a line
rewritten in place on a terminal, a line every 10 % otherwise).

``--weights`` (comma-separated list) initialises the nets from trained weights (fine-tuning); ``--snapshot``
resumes from a ``.solverstate``/``.solverstate.h5``; the two exclude each other. Ctrl-C (SIGINT) asks the
solver to finish the current iteration, snapshot and stop (``--sigint-effect``, default ``snapshot``); a second
Ctrl-C stops at once without a snapshot. The exit status is then 130.
"""
import signal
import sys
import time


def add_parser(sub):
    p = sub.add_parser("train", help="train a net with a solver (as caffe train)")
    p.add_argument("--solver", required=True, help="solver definition (.prototxt)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--weights", help="weights to start from (.caffemodel or .h5; comma-separated list)")
    g.add_argument("--snapshot", help="solver state to resume from (.solverstate or .solverstate.h5)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--sigint-effect", choices=["snapshot", "stop", "none"], default="snapshot",
                   help="what Ctrl-C does: snapshot then stop (default), stop, or nothing")
    p.add_argument("--quiet-progress", action="store_true", help="no progress indicator on stderr")
    return p


class Progress:
    """Per-iteration callback printing ``[iter/max_iter] loss`` on a stream."""

    def __init__(self, max_iter, stream=None):
        self.max_iter = max(int(max_iter), 1)
        self.stream = sys.stderr if stream is None else stream   # looked up now: tests swap sys.stderr
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.start = time.perf_counter()
        self.last_decile = -1
        self.dirty = False

    def __call__(self, solver):
        done = solver.iter
        elapsed = time.perf_counter() - self.start
        text = "[%d/%d] %3d%% loss %.4g  %.1f s" % (done, self.max_iter, 100 * done // self.max_iter,
                                                    solver.smoothed_loss, elapsed)
        if self.tty:
            self.stream.write("\r" + text + "   ")
            self.stream.flush()
            self.dirty = True
        else:
            decile = 10 * done // self.max_iter
            if decile != self.last_decile:
                self.last_decile = decile
                self.stream.write("progress " + text + "\n")
                self.stream.flush()

    def close(self):
        if self.dirty:
            self.stream.write("\n")
            self.stream.flush()
            self.dirty = False


def _stdout_log(line):
    print(line, flush=True)


def run(args):
    from crfrnn_np.solver import get_solver
    solver = get_solver(args.solver, dtype=args.dtype, backend=args.backend, log=_stdout_log)
    if args.weights:
        for w in args.weights.split(","):
            if w:
                _stdout_log("Finetuning from %s" % w)
                solver.copy_weights(w)
    progress = None
    if not args.quiet_progress:
        progress = Progress(solver.param.max_iter)
        solver.add_callback(progress)
    interrupted = []

    def on_sigint(signum, frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(signum)
        if args.sigint_effect == "snapshot":
            solver.request("snapshot_stop")
        elif args.sigint_effect == "stop":
            solver.request("stop")

    old = None
    if args.sigint_effect != "none":
        try:
            old = signal.signal(signal.SIGINT, on_sigint)
        except ValueError:
            old = None           # not the main thread: KeyboardInterrupt is handled below
    try:
        solver.solve(resume_file=args.snapshot)
    except KeyboardInterrupt:
        if progress:
            progress.close()
        if args.sigint_effect == "snapshot" and not interrupted and not solver.updating:
            _stdout_log("Interrupted: snapshotting at iteration %d" % solver.iter)
            solver.snapshot()
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
        if progress:
            progress.close()
    return 130 if interrupted else 0
