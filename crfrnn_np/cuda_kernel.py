"""``gpu_kernel``: the decorator of the project's numba.cuda kernels, and the registry that proves them.

The numba.cuda simulator (``NUMBA_ENABLE_CUDASIM=1``) runs a kernel as Python and never type-checks it, so a
kernel can pass every simulator test and still not compile for a GPU. Every kernel of the project is therefore
declared through :func:`gpu_kernel` together with the argument types it is launched with, and
``tests/crfrnn_np/test_cuda_kernel.py`` compiles each one to PTX for sm_80 and sm_90 in float32 and float64
(NVIDIA's compiler wheels, no GPU needed). Two checks keep the declaration honest:

* under the simulator, :func:`recording` collects the types of every real launch, and the tests assert that
  each one is a declared signature (so what is compiled is what runs);
* a source scan fails on any ``cuda.jit`` outside this module (so no kernel escapes the registry).

::

    @gpu_kernel(lambda f: [(f[:, ::1], I32[::1], f[:, ::1])])   # f: numba float32 or float64
    def _splat_kernel(values, offsets, buf): ...

    _splat_kernel[grid, block](values, offsets, buf)             # launched like a numba.cuda kernel
"""
import contextlib
import math

import numba
from numba import cuda, types

from .config import THREADS_PER_BLOCK

__all__ = ["gpu_kernel", "KERNELS", "recording", "undeclared", "arg_type", "grid_1d", "F32", "F64", "I32", "I64",
           "FLOAT_TYPES"]

#: numba types for the signature lambdas.
F32, F64, I32, I64 = types.float32, types.float64, types.int32, types.int64
#: The value types every kernel is declared (and compiled) for.
FLOAT_TYPES = (F32, F64)

#: Qualified name (``module.function``) -> :class:`GpuKernel`, filled at import time of each kernel module.
KERNELS = {}

_launches = None  # a set of (kernel name, argument types) while `recording` is active


def arg_type(value):
    """The numba type a launch gives ``value``: arrays (host or device) by dtype, dimensions and layout
    (``C`` when C-contiguous, else ``A``), scalars as :func:`numba.typeof` types them."""
    if getattr(value, "ndim", 0) and hasattr(value, "dtype"):
        contiguous = (value.is_c_contiguous() if hasattr(value, "is_c_contiguous")
                      else value.flags["C_CONTIGUOUS"])
        return types.Array(numba.from_dtype(value.dtype), value.ndim, "C" if contiguous else "A")
    return numba.typeof(value)


class GpuKernel:
    """A numba.cuda kernel with its declared launch signatures.

    Parameters
    ----------
    function : callable
        The kernel body (plain Python, numba.cuda device code).
    signatures : callable
        ``signatures(f) -> [tuple of numba types]``: the argument types of the launches the code makes when
        the values are of float type ``f`` (``F32`` or ``F64``). A kernel whose types do not depend on ``f``
        simply ignores it.
    """

    def __init__(self, function, signatures):
        self.py_func = function
        self.name = "%s.%s" % (function.__module__, function.__qualname__)
        self._signatures = signatures
        self._dispatcher = None

    def signatures(self):
        """Every declared signature (both float types), without repeats, in declaration order."""
        seen = []
        for f in FLOAT_TYPES:
            for sig in self._signatures(f):
                sig = tuple(sig)
                if sig not in seen:
                    seen.append(sig)
        return seen

    @property
    def dispatcher(self):
        """The ``numba.cuda.jit`` dispatcher (made on first launch, so importing a kernel module compiles
        nothing)."""
        if self._dispatcher is None:
            self._dispatcher = cuda.jit(self.py_func)
        return self._dispatcher

    def __getitem__(self, config):
        launch = self.dispatcher[config]

        def run(*args):
            if _launches is not None:
                _launches.add((self.name, tuple(arg_type(a) for a in args)))
            launch(*args)

        return run

    def __repr__(self):
        return "<gpu_kernel %s>" % self.name


def gpu_kernel(signatures):
    """Decorator: register a numba.cuda kernel with its launch signatures (see :class:`GpuKernel`)."""

    def deco(function):
        kernel = GpuKernel(function, signatures)
        if kernel.name in KERNELS:
            raise ValueError("gpu kernel %s registered twice" % kernel.name)
        KERNELS[kernel.name] = kernel
        return kernel

    return deco


@contextlib.contextmanager
def recording():
    """Collect ``{(kernel name, argument types)}`` of every launch made inside the block."""
    global _launches
    outer = _launches
    _launches = set() if outer is None else outer
    try:
        yield _launches
    finally:
        _launches = outer


def undeclared(launches):
    """The launches of a :func:`recording` whose argument types no declared signature has, as readable lines."""
    return sorted("%s%s" % (name, tuple(str(t) for t in sig)) for name, sig in launches
                  if sig not in KERNELS[name].signatures())


def grid_1d(work):
    """``(blocks, threads)`` of a 1-D launch covering ``work`` threads (at least one block): blocks of
    ``THREADS_PER_BLOCK``, or fewer, a whole number of 32-thread warps, for less work (the simulator makes a
    Python thread for every GPU thread, idle ones included)."""
    threads = min(THREADS_PER_BLOCK, 32 * max(1, math.ceil(work / 32)))
    return max(1, math.ceil(work / threads)), threads
