"""Where ``crfrnn segment --images`` runs its images: this process, a local process pool, or a dask cluster.

Each runner takes the settings and the jobs (``(index, image path, ground-truth path or None)``) and yields
the result dicts of :func:`segment_worker.segment_one` as they complete, in any order; the caller writes them.

Warming the numba cache: the CPU kernels are compiled on first use and cached on disk (``cache=True``).
Several processes compiling the same kernels into the same cache at once is a known way to crash numba, so
the pool and the dask runner first segment images one at a time until one succeeds (on the pool) or one
image per machine (on dask), and only then hand out the rest; the other processes then load the cache.

Local pool: processes started with the ``spawn`` method (a child forked from a process whose numba or BLAS
threads are running may hang or die), each on ``cores / N`` threads. A pool process that dies (killed, out
of memory) fails the images still pending, and the run says so, instead of waiting for them forever.
"""
import contextlib
import os
import uuid

from crfrnn_np.errors import Error

from . import segment_worker


def inline_results(settings, jobs):
    """Segment the jobs in this process, one after another (``--workers 1``)."""
    for job in jobs:
        yield segment_worker.segment_one(settings, job)


@contextlib.contextmanager
def _environ(values):
    """Set environment variables for the processes started inside the block; restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _failed(job, message):
    return {"index": job[0], "png": None, "panel": None, "confusion": None, "error": message, "fatal": False}


def pool_results(settings, jobs, workers):
    """Segment the jobs on ``workers`` spawned processes of this machine.

    Parameters
    ----------
    settings : dict
        See :func:`segment_worker.segment_one`.
    jobs : list of tuple
    workers : int
        Processes (at least 2; each runs numba and BLAS on ``cores // workers`` threads).

    Yields
    ------
    dict
        One result per job, in completion order.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    threads = segment_worker.threads_per_worker(workers)
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=segment_worker.init_pool_worker, initargs=(threads,))
    pending = list(jobs)
    done = []
    futures = {}
    try:
        # A pool process is started by a submit that finds no idle one, and takes the environment of that
        # moment: BLAS reads its thread count when numpy loads, before any code of ours runs in the child.
        with _environ(segment_worker.thread_env(threads)):
            while pending:                                  # warm the numba cache on one process first
                job = pending.pop(0)
                result = _result_or_failure(executor.submit(segment_worker.segment_one, settings, job), job,
                                            BrokenProcessPool)
                done.append(result)
                if result["error"] is None or result["fatal"]:
                    break
            if done and done[-1]["fatal"]:
                pending = []
            futures = {executor.submit(segment_worker.segment_one, settings, job): job for job in pending}
        yield from done
        for future in as_completed(futures):
            yield _result_or_failure(future, futures[future], BrokenProcessPool)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _result_or_failure(future, job, broken):
    """The future's result dict, or a failed result naming the image when its process died."""
    try:
        return future.result()
    except broken:
        return _failed(job, "%s: a worker process died (killed, or out of memory?) before it finished this "
                            "image" % job[1])


def _connect(scheduler):
    """A dask client of the scheduler at ``scheduler``, with at least one worker; one-line errors."""
    from crfrnn_np.config import DASK_CONNECT_TIMEOUT
    try:
        from distributed import Client
    except ImportError:
        raise Error("--scheduler needs dask.distributed, which is not installed here: "
                    "pip install 'crfrnn-np[dask]'") from None
    if _port(scheduler) is None:
        raise Error("--scheduler wants the scheduler's address as tcp://HOST:PORT, got '%s'" % scheduler)
    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise Error("cannot reach the dask scheduler at %s (waited %g s): %s"
                    % (scheduler, DASK_CONNECT_TIMEOUT, str(exc).splitlines()[0] if str(exc) else
                       type(exc).__name__)) from None
    try:
        client.wait_for_workers(1, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise Error("the dask scheduler at %s has no workers (waited %g s): start some with "
                    "'dask worker %s --nthreads 1'" % (scheduler, DASK_CONNECT_TIMEOUT, scheduler)) from exc
    return client


def _port(address):
    """The port of ``tcp://HOST:PORT`` (or ``HOST:PORT``), None when there is none."""
    from urllib.parse import urlsplit
    try:
        return urlsplit(address if "://" in address else "tcp://" + address).port
    except ValueError:
        return None


def _host(address):
    """The host part of a dask address such as ``tcp://10.0.0.5:40123``."""
    from urllib.parse import urlsplit
    return urlsplit(address).hostname


def dask_segment_one(settings, job, host_threads):
    """:func:`segment_worker.segment_one` on a dask worker, on ``cores / (worker threads on this machine)``
    numba threads (BLAS: the nanny starts its workers with one thread)."""
    from distributed import get_worker
    share = host_threads.get(_host(get_worker().address), 1)
    return segment_worker.segment_one(dict(settings, threads=segment_worker.threads_per_worker(share)), job)


def dask_results(settings, jobs, scheduler):
    """Segment the jobs on the dask.distributed cluster whose scheduler is at ``scheduler``.

    The workers read the images, the ground truth and the model files from the paths given (absolute, so
    they must be visible there as here); only the result dicts come back.

    Parameters
    ----------
    settings : dict
    jobs : list of tuple
    scheduler : str
        ``tcp://HOST:PORT``.

    Yields
    ------
    dict
        One result per job, in completion order.
    """
    client = _connect(scheduler)
    run = uuid.uuid4().hex[:8]
    try:
        from distributed import as_completed
        workers = client.scheduler_info()["workers"]
        host_threads, first_worker = {}, {}
        for address, info in workers.items():
            host = _host(address)
            host_threads[host] = host_threads.get(host, 0) + int(info.get("nthreads", 1))
            first_worker.setdefault(host, address)

        def submit(job, **where):
            return client.submit(dask_segment_one, settings, job, host_threads, key="crfrnn-segment-%s-%d"
                                 % (run, job[0]), pure=False, **where)

        pending = list(jobs)
        warm = {}
        for address in first_worker.values():              # one image per machine first: warm its cache
            if pending:
                job = pending.pop(0)
                warm[submit(job, workers=[address], allow_other_workers=False)] = job
        for future in as_completed(list(warm), loop=client.loop):
            yield _dask_result(future, warm.pop(future))
        rest = {submit(job): job for job in pending}
        for future in as_completed(list(rest), loop=client.loop):
            yield _dask_result(future, rest.pop(future))
    finally:
        client.close()


def _dask_result(future, job):
    """The task's result dict, or a failed result naming the image when the task itself failed."""
    try:
        result = future.result()
    except Exception as exc:                 # KilledWorker, a worker that cannot import crfrnn_np, ...
        first = str(exc).splitlines()[0] if str(exc) else ""
        result = _failed(job, "%s: dask task failed: %s: %s" % (job[1], type(exc).__name__, first))
    future.release()
    return result
