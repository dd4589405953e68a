"""``crfrnn segment --images SRC --output-dir OUT``: segment a whole data set.

SRC is a folder (its image files, sorted by name; hidden files skipped) or a text file listing image paths,
one a line (blank lines and ``#`` comments skipped; relative paths are taken from the list file's folder).
Each image ``.../<stem>.<ext>`` gives ``OUT/<stem>.png``, a VOC-palette label map the size of the image (the
result at the net's size scaled back by nearest neighbour), and with ``--panel`` the picture image | unary
argmax | result in ``OUT/panels/<stem>.png`` (or ``--panel DIR``).

Safe to interrupt: the outputs are encoded by the workers and written here, each to a temporary name then
renamed, so a run killed at any moment leaves only complete PNGs (and perhaps a hidden temporary file, which
the next run removes). A re-run skips the images whose outputs exist (``--overwrite`` redoes them all). An
image that cannot be read is reported with its path and the run goes on; the exit status is 1 when any
image failed.

With ``--ground-truth DIR`` (label maps with the images' stems) and ``--num-classes C`` the run also scores
the set as ``crfrnn evaluate`` does, from one confusion matrix: the workers return each image's matrix with
its PNG, and the images skipped because their output exists are scored from that output.

Where the images run: this process (``--workers 1``, the default), a local pool (``--workers N``, 0 = one per
core; :mod:`segment_pool`), or a dask.distributed cluster (``--scheduler tcp://HOST:PORT``). The results are
identical bit for bit.
"""
import os
import sys
import time

import numpy as np

#: Files of an image folder that are segmented (PIL reads them all).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".webp")


def list_images(source):
    """The image paths of a folder or of a list file.

    Parameters
    ----------
    source : str
        A folder, or a text file with one image path a line.

    Returns
    -------
    list of str
        In folder name order, or in list order.
    """
    from crfrnn_np.errors import Error
    if os.path.isdir(source):
        names = sorted(n for n in os.listdir(source)
                       if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
        paths = [os.path.join(source, n) for n in names if os.path.isfile(os.path.join(source, n))]
    elif os.path.isfile(source):
        base = os.path.dirname(os.path.abspath(source))
        paths = []
        with open(source, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    paths.append(line if os.path.isabs(line) else os.path.join(base, line))
    else:
        raise Error("%s: no such folder or list file" % source)
    if not paths:
        raise Error("%s: no images in it" % source)
    return paths


def output_stems(paths):
    """The stem of each image; two images with one stem would write one output, which is an error."""
    from crfrnn_np.errors import Error
    stems, seen = [], {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in seen:
            raise Error("%s: same output name '%s.png' as %s" % (path, stem, seen[stem]))
        seen[stem] = path
        stems.append(stem)
    return stems


def remove_stale_temporaries(folder, names):
    """Remove the temporary files (``.<name>.*.tmp``, see :mod:`crfrnn_np.atomic`) a killed run left for
    the outputs ``names`` in ``folder``."""
    if not os.path.isdir(folder):
        return
    prefixes = tuple("." + name + "." for name in names)
    for entry in os.listdir(folder):
        if entry.endswith(".tmp") and entry.startswith(prefixes):
            try:
                os.remove(os.path.join(folder, entry))
            except OSError:
                pass


class Progress:
    """``done/total, images/s, time left`` on one line of a terminal; nothing when the stream is not one.

    The rate counts the images processed in this run (not the skipped ones) over the time since it started.
    """

    def __init__(self, total, skipped, stream=None, interval=0.25):
        self.stream = sys.stderr if stream is None else stream
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.finished, self.processed = total, skipped, 0
        self.start = self.last = time.perf_counter()
        self.interval = interval
        self.shown = False

    def step(self):
        """One more image processed (done or failed)."""
        self.finished += 1
        self.processed += 1
        now = time.perf_counter()
        if self.tty and (now - self.last >= self.interval or self.finished == self.total):
            self.last = now
            rate = self.processed / max(now - self.start, 1e-9)
            left = (self.total - self.finished) / rate
            self.stream.write("\r%d/%d images  %.2f images/s  %d:%02d left   "
                              % (self.finished, self.total, rate, left // 60, left % 60))
            self.stream.flush()
            self.shown = True

    def note(self, line):
        """Print a line (a failure) without mangling the bar."""
        self.stream.write(("\r\033[K" if self.shown else "") + line + "\n")
        self.stream.flush()

    def close(self):
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def settings_of(args):
    """What every worker needs, with the model and weights as absolute paths (a dask worker runs elsewhere)."""
    def absolute(path):
        return os.path.abspath(path) if path and os.path.exists(path) else path
    return {"model": absolute(args.model), "weights": absolute(args.weights), "dtype": args.dtype,
            "backend": args.backend, "any_size": args.any_size, "max_size": args.max_size,
            "panel": args.panel is not None, "num_classes": args.num_classes, "ignore_label": args.ignore_label}


def check_args(args):
    from crfrnn_np.errors import Error
    if args.output:
        raise Error("--images writes into --output-dir, not --output")
    if not args.output_dir:
        raise Error("--images needs --output-dir")
    if args.workers < 0:
        raise Error("--workers must be 0 (one per core) or more, got %d" % args.workers)
    if args.scheduler and args.workers != 1:
        raise Error("--scheduler runs on the cluster's workers: leave out --workers")
    if args.ground_truth and args.num_classes is None:
        raise Error("--ground-truth needs --num-classes (21 for PASCAL VOC)")


def run_dataset(args):
    """The ``--images`` form of ``crfrnn segment``; returns the exit status."""
    from crfrnn_np import atomic, image, metrics
    from crfrnn_np.errors import Error
    from . import evaluate, segment_pool, segment_worker
    check_args(args)
    if args.ground_truth:
        evaluate.check_classes(args.num_classes, args.ignore_label)
    paths = [os.path.abspath(p) for p in list_images(args.images)]
    stems = output_stems(paths)
    truths = [None] * len(paths)
    if args.ground_truth:
        found = evaluate.label_files(args.ground_truth, "ground truth")
        for k, stem in enumerate(stems):
            if stem not in found:
                raise Error("%s: no ground truth '%s.png' for this image in %s" % (paths[k], stem, args.ground_truth))
            truths[k] = os.path.abspath(found[stem])
    out_dir = args.output_dir
    panel_dir = (args.panel or os.path.join(out_dir, "panels")) if args.panel is not None else None
    for folder in (out_dir, panel_dir):
        if folder:
            os.makedirs(folder, exist_ok=True)
            remove_stale_temporaries(folder, [s + ".png" for s in stems])
    outputs = [os.path.join(out_dir, s + ".png") for s in stems]
    panels = [os.path.join(panel_dir, s + ".png") if panel_dir else None for s in stems]

    def finished(k):
        return os.path.exists(outputs[k]) and (panels[k] is None or os.path.exists(panels[k]))

    todo = [k for k in range(len(paths)) if args.overwrite or not finished(k)]
    skipped = sorted(set(range(len(paths))) - set(todo))
    matrix = np.zeros((args.num_classes, args.num_classes), np.int64) if args.ground_truth else None
    failures = []
    progress = Progress(len(paths), len(skipped))
    start = time.perf_counter()

    def fail(message):
        failures.append(message)
        progress.note("crfrnn: failed: %s" % message)

    if args.ground_truth:                         # images done by an earlier run: score their outputs
        for k in skipped:
            try:
                matrix += metrics.confusion(image.read_label_png(outputs[k]), image.read_label_png(truths[k]),
                                            args.num_classes, args.ignore_label, where=outputs[k])
            except Error as exc:
                fail(str(exc))
    settings = settings_of(args)
    jobs = [(k, paths[k], truths[k]) for k in todo]
    workers = args.workers or segment_worker.cpu_count()
    if args.scheduler:
        results = segment_pool.dask_results(settings, jobs, args.scheduler)
    elif workers > 1 and len(jobs) > 1:
        results = segment_pool.pool_results(settings, jobs, min(workers, len(jobs)))
    else:
        results = segment_pool.inline_results(settings, jobs)
    done = 0
    try:
        for result in results:
            if result["fatal"]:
                raise Error(result["error"])
            k = result["index"]
            if result["error"] is not None:
                fail(result["error"])
            else:
                atomic.write_bytes(outputs[k], result["png"])
                if panels[k] is not None:
                    atomic.write_bytes(panels[k], result["panel"])
                if matrix is not None:
                    matrix += result["confusion"]
                done += 1
            progress.step()
    finally:
        results.close()
        progress.close()
    seconds = time.perf_counter() - start
    print("segmented %d, skipped %d (output exists), failed %d of %d images in %.1f s (%.2f images/s)"
          % (done, len(skipped), len(failures), len(paths), seconds, (done + len(failures)) / max(seconds, 1e-9)))
    if matrix is not None:
        for line in metrics.format_table(matrix, len(paths) - len(failures)):
            print(line)
    return 1 if failures else 0
