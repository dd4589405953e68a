"""The worker side of ``crfrnn segment --images``: one image in, PNG bytes (and a confusion matrix) out.

A worker is any process that runs :func:`segment_one`: the ``crfrnn`` process itself (``--workers 1``), a
process of the local pool, or a dask worker process. It builds the net and loads the weights the first time
it is asked for them and keeps them for every later image with the same settings (:func:`worker_net`), reads
the image and the ground truth from their paths, and returns the encoded outputs, so that only the client
writes files (each atomically, see :mod:`crfrnn_np.atomic`) and a worker killed at any moment leaves nothing
half-written.

Threads: a worker's numba kernels and BLAS run on ``cores / workers`` threads, so that N workers do not
oversubscribe the machine. OpenBLAS reads its thread count once, when numpy loads it, so a pool process gets
it through its environment (:func:`thread_env`, set before the process is spawned); numba's thread count is
set in the process (:func:`crfrnn_np.threads.set_num_threads`). Results do not depend on either.
"""
import os
import time
import traceback

#: Environment variables that size the thread pools of OpenBLAS, OpenMP, MKL and numba.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

# The net of this process, built once per settings (a pool or dask worker segments many images).
_cache = {"key": None, "net": None}


def cpu_count():
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads_per_worker(workers, cores=None):
    """``cores / workers`` threads for each of ``workers`` processes, at least 1."""
    return max(1, (cpu_count() if cores is None else cores) // max(1, workers))


def thread_env(threads):
    """The environment entries that give a new process ``threads`` BLAS, OpenMP and numba threads."""
    return {var: str(threads) for var in THREAD_VARS}


def init_pool_worker(threads):
    """Initializer of a local pool process: numba's kernels on ``threads`` threads (BLAS got it by env), and
    exit when the parent dies.

    A pool process holds both ends of its task pipe, so it would wait for tasks forever after its parent was
    killed (SIGKILL leaves the parent no chance to stop it); a daemon thread waits on the parent's sentinel
    (a pipe the parent holds open, closed by the OS when it dies) and ends the process then.
    """
    import multiprocessing
    import threading
    from crfrnn_np import threads as thread_pool
    thread_pool.set_num_threads(threads)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent,), name="crfrnn-parent-watch", daemon=True).start()


def _exit_with_parent(parent):
    parent.join()
    os._exit(1)


def worker_net(settings):
    """The net of this process for ``settings``, built (and its weights loaded) on first use.

    Parameters
    ----------
    settings : dict
        ``model``, ``weights``, ``dtype``, ``backend`` (and the per-image settings, which do not matter here).

    Returns
    -------
    crfrnn_np.Net
    """
    from crfrnn_np import Net
    key = (settings["model"], settings["weights"], settings["dtype"], settings["backend"])
    if _cache["key"] != key:
        _cache["key"], _cache["net"] = None, None          # free the old net before building the new one
        _cache["net"] = Net(settings["model"], weights=settings["weights"], phase="TEST", dtype=settings["dtype"],
                            backend=settings["backend"])
        _cache["key"] = key
    return _cache["net"]


def label_maps(net, rgb, settings):
    """Segment one RGB image at the net's size and scale the labels back to the image's own size.

    Parameters
    ----------
    net : crfrnn_np.Net
    rgb : ndarray, shape (H, W, 3), uint8
    settings : dict
        ``any_size``, ``max_size`` as ``crfrnn segment`` takes them.

    Returns
    -------
    labels : ndarray, shape (H, W), uint8
        The result at the input size (nearest neighbour from the segmented size, when it was shrunk).
    shown : ndarray, shape (h, w, 3), uint8
        The image as segmented (shrunk to the net's input size), for the panel.
    maps : list of ndarray, shape (h, w)
        The unary argmax (when the net has a MultiStageMeanfield layer) and the result, at that size.
    """
    from crfrnn_np import image
    from .segment import segment
    height, width = rgb.shape[:2]
    shown, labels, unary_labels = segment(net, rgb, settings["any_size"], settings["max_size"],
                                          unary=settings["panel"])
    maps = [labels] if unary_labels is None else [unary_labels, labels]
    return image.resize_labels(labels, height, width), shown, maps


def segment_one(settings, job):
    """Segment one image of a data set; never raises for a problem of that image.

    Parameters
    ----------
    settings : dict
        ``model``, ``weights``, ``dtype``, ``backend``, ``any_size``, ``max_size``, ``panel`` (bool),
        ``num_classes``, ``ignore_label``, and optionally ``threads`` (numba threads for this process).
    job : tuple
        ``(index, image path, ground-truth path or None)``.

    Returns
    -------
    dict
        ``index``; ``png``: the label map at the image's size as palette PNG bytes; ``panel``: PNG bytes or
        None; ``confusion``: (C, C) int64 or None; ``seconds``; ``error``: None, or one line naming the file;
        ``fatal``: True when the net itself could not be built (every image would fail the same way).
    """
    from crfrnn_np import image, metrics, threads
    from crfrnn_np.errors import Error
    index, path, truth_path = job
    result = {"index": index, "png": None, "panel": None, "confusion": None, "error": None, "fatal": False}
    start = time.perf_counter()
    if settings.get("threads") and threads.num_threads() != settings["threads"]:
        threads.set_num_threads(settings["threads"])
    try:
        net = worker_net(settings)
    except (Error, OSError) as exc:
        result.update(error=str(exc), fatal=True)
        return result
    try:
        rgb = image.load_image(path)
        labels, shown, maps = label_maps(net, rgb, settings)
        result["png"] = image.png_bytes(image.label_image(labels))
        if settings["panel"]:
            result["panel"] = image.png_bytes(image.panel_image(shown, *maps))
        if truth_path is not None:
            truth = image.read_label_png(truth_path)
            result["confusion"] = metrics.confusion(labels, truth, settings["num_classes"],
                                                    settings["ignore_label"], where=truth_path)
    except (Error, OSError) as exc:
        message = str(exc)
        result["error"] = message if os.fspath(path) in message or (truth_path and truth_path in message) \
            else "%s: %s" % (path, message)
    except Exception as exc:                 # a bug, not bad input: name the image, keep the last frame
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        result["error"] = "%s: %s: %s (%s:%d)" % (path, type(exc).__name__, exc, frame.filename, frame.lineno)
    result["seconds"] = time.perf_counter() - start
    return result
