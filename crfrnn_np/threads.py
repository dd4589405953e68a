"""The threads the CPU kernels run on.

Every CPU kernel of the project is a serial ``numba.njit(nogil=True)`` function over a range of work items
``[lo, hi)`` (pixels, vertices, channels, tasks); :func:`parallel_for` cuts the range into one contiguous
piece per thread and runs the pieces on a small pool of Python threads (the kernels release the GIL). This
replaces numba's ``parallel=True``/``prange``:

* a parallel numba function compiles about four times slower than the same loop compiled serially (its
  body is compiled twice, once as a gufunc), and the first ``crfrnn demo`` spent most of its time there;
* one kernel serves small and large problems (no serial/parallel twin per kernel);
* no OpenMP/TBB threading layer is started, so a process forked after a kernel ran is safe.

The thread count comes from ``NUMBA_NUM_THREADS`` (numba's own setting, default: the number of cores) and
can be changed with :func:`set_num_threads`; results never depend on it (each work item is computed by
one thread, in a fixed order).
"""
import atexit
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_state = {"threads": None, "pool": None, "workers": 0}


def num_threads():
    """The number of threads :func:`parallel_for` uses."""
    if _state["threads"] is None:
        import numba
        _state["threads"] = max(1, int(numba.config.NUMBA_NUM_THREADS))
    return _state["threads"]


def set_num_threads(count):
    """Use ``count`` threads from now on (at least 1)."""
    with _lock:
        _state["threads"] = max(1, int(count))
        _shutdown()


def _shutdown():
    pool, _state["pool"], _state["workers"] = _state["pool"], None, 0
    if pool is not None:
        pool.shutdown(wait=False)


def _pool(workers):
    """The shared pool, with at least ``workers`` threads (the calling thread runs one piece itself)."""
    with _lock:
        if _state["pool"] is None or _state["workers"] < workers:
            _shutdown()
            _state["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crfrnn")
            _state["workers"] = workers
        return _state["pool"]


def _forget_pool():
    """In a forked child the pool's threads do not exist: start a new pool on first use."""
    _state["pool"], _state["workers"] = None, 0


if hasattr(os, "register_at_fork"):           # POSIX; elsewhere there is no fork
    os.register_at_fork(after_in_child=_forget_pool)
atexit.register(_shutdown)


def split(count, pieces):
    """``pieces + 1`` bounds cutting ``range(count)`` into contiguous pieces of nearly equal size."""
    return [count * k // pieces for k in range(pieces + 1)]


def items_per_thread(items, work):
    """Fewest of ``items`` work items per thread so that each thread gets at least
    :data:`crfrnn_np.config.PARALLEL_MIN_WORK` elements of ``work`` (the elements all items touch)."""
    from .config import PARALLEL_MIN_WORK
    return max(1, -(-items * PARALLEL_MIN_WORK // max(work, 1)))


def parallel_for(kernel, count, *args, grain=1):
    """Run ``kernel(*args, lo, hi)`` on pieces ``[lo, hi)`` covering ``range(count)``, one per thread.

    Parameters
    ----------
    kernel : callable
        A ``numba.njit(nogil=True)`` function whose last two arguments are the range it handles.
    count : int
        Number of work items.
    *args
        The kernel's other arguments.
    grain : int
        Fewest work items worth a thread of their own (a small problem runs on the calling thread only).
    """
    pieces = min(num_threads(), count // max(1, grain))
    if pieces <= 1:
        kernel(*args, 0, count)
        return
    bounds = split(count, pieces)
    pool = _pool(pieces - 1)
    futures = [pool.submit(kernel, *args, bounds[k], bounds[k + 1]) for k in range(1, pieces)]
    try:
        kernel(*args, bounds[0], bounds[1])
    finally:
        for future in futures:
            future.result()
