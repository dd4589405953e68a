"""Backend availability checks."""
import os

from .errors import BackendError


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


def check_cuda():
    """Raise a BackendError explaining how to get a CUDA backend when none is available."""
    if not cuda_available():
        raise BackendError("backend 'cuda' requested but numba.cuda finds no GPU (no CUDA driver or device); "
                           "use backend='cpu', or set NUMBA_ENABLE_CUDASIM=1 to run the CUDA kernels "
                           "in numba's simulator")
