"""Backend availability checks: is there a CUDA device, does it do float64, does a net fit in its memory.

Each check raises a :class:`~crfrnn_np.errors.BackendError` with one line saying what is missing, so the
command line prints it as is (``crfrnn ... --backend cuda`` on a machine without a GPU).
"""
import os

import numpy as np

from .errors import BackendError

#: First compute capability with double-precision arithmetic (CUDA's sm_13).
FLOAT64_MIN_CC = (1, 3)


def cuda_available():
    """True when numba.cuda has a device or runs under the simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    try:
        from numba import cuda
    except Exception:  # numba without CUDA support
        return False
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return True
    try:
        return bool(cuda.is_available())
    except Exception:
        return False


def simulator_on():
    """True when numba.cuda is the simulator (no real device, kernels run as Python)."""
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def real_gpu_present():
    """True when numba.cuda reaches a real device (a driver and a GPU): never under the simulator."""
    return bool(cuda_available()) and not simulator_on()


def device_info():
    """``(name, compute capability, free bytes, total bytes)`` of the current CUDA device (a nominal large
    device under the simulator)."""
    from numba import cuda
    if simulator_on():
        return "numba.cuda simulator", (9, 0), 1 << 40, 1 << 40
    device = cuda.get_current_device()
    free, total = cuda.current_context().get_memory_info()
    name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    return name, tuple(device.compute_capability), int(free), int(total)


def check_cuda(dtype=None, info=None):
    """Raise a BackendError when the CUDA backend cannot run: no device (nor the simulator), or ``dtype``
    float64 on a device without double precision.

    Parameters
    ----------
    dtype : numpy dtype, optional
        The net's dtype; float64 is checked against the device.
    info : tuple, optional
        :func:`device_info`'s answer (tests pass a made-up device).
    """
    if info is None:
        if not cuda_available():
            raise BackendError("backend 'cuda' requested but numba.cuda finds no GPU (no CUDA driver or device); "
                               "use backend='cpu', or set NUMBA_ENABLE_CUDASIM=1 to run the CUDA kernels "
                               "in numba's simulator")
        if dtype is None or np.dtype(dtype) != np.float64:
            return
        info = device_info()
    name, cc, _, _ = info
    if dtype is not None and np.dtype(dtype) == np.float64 and tuple(cc) < FLOAT64_MIN_CC:
        raise BackendError("backend 'cuda': device %s (compute capability %d.%d) has no float64 arithmetic; "
                           "use dtype float32" % (name, cc[0], cc[1]))


def check_device_memory(need, what, info=None):
    """Raise a BackendError when ``need`` bytes do not fit in the device's free memory (checked before
    allocating, so an oversized net fails with this line rather than a CUDA out-of-memory error).

    Parameters
    ----------
    need : int
        Bytes about to be allocated.
    what : str
        What they are for, e.g. ``"net 'fcn8s': blobs (largest 'score' 1 21 500 500)"``.
    info : tuple, optional
        :func:`device_info`'s answer.
    """
    name, _, free, total = device_info() if info is None else info
    if need > free:
        raise BackendError("backend 'cuda': %s need %.2f GB of device memory, but device %s has %.2f GB free "
                           "(of %.2f GB)" % (what, need / 1e9, name, free / 1e9, total / 1e9))
