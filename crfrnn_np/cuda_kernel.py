"""``gpu_kernel``: the decorator of the project's numba.cuda kernels, and the registry that proves them.

The numba.cuda simulator (``NUMBA_ENABLE_CUDASIM=1``) runs a kernel as Python and never type-checks it, so a
kernel can pass every simulator test and still not compile for a GPU. Every kernel of the project is therefore
declared through :func:`gpu_kernel` together with the argument types it is launched with, and
``tests/crfrnn_np/test_cuda_kernel.py`` compiles each one to PTX for sm_80 and sm_90 in float32 and float64
(NVIDIA's compiler wheels, no GPU needed). Two checks keep the declaration honest:

* under the simulator, :func:`recording` collects the types of every real launch, and the tests assert that
  each one is a declared signature (so what is compiled is what runs);
* a source scan fails on any ``cuda.jit`` outside this module (so no kernel escapes the registry).

Device functions (code that several kernels call, such as the block reductions of ``cuda_reduce.py``) are
declared the same way with :func:`gpu_device`, with the argument types they are called with; the PTX test
compiles them on their own as well as inside every kernel that calls them.

::

    @gpu_kernel(lambda f: [(f[:, ::1], I32[::1], f[:, ::1])])   # f: numba float32 or float64
    def _splat_kernel(values, offsets, buf): ...

    _splat_kernel[grid, block](values, offsets, buf)             # launched like a numba.cuda kernel

    @gpu_device(lambda f: [(f[::1], I64)])
    def block_reduce(buf, op): ...                               # called from kernels like a function
"""
import contextlib
import math

import numba
from numba import cuda, types

from .config import THREADS_PER_BLOCK

__all__ = ["gpu_kernel", "gpu_device", "KERNELS", "DEVICE_FUNCTIONS", "recording", "undeclared", "arg_type",
           "grid_1d", "F32", "F64", "I32", "I64", "FLOAT_TYPES"]

#: numba types for the signature lambdas.
F32, F64, I32, I64 = types.float32, types.float64, types.int32, types.int64
#: The value types every kernel is declared (and compiled) for.
FLOAT_TYPES = (F32, F64)

#: Qualified name (``module.function``) -> :class:`GpuKernel`, filled at import time of each kernel module.
KERNELS = {}
#: Qualified name -> :class:`GpuDevice`, likewise for the device functions.
DEVICE_FUNCTIONS = {}

_launches = None  # a set of (kernel name, argument types) while `recording` is active


def arg_type(value):
    """The numba type a launch gives ``value``: arrays (host or device) by dtype, dimensions and layout
    (``C`` when C-contiguous, else ``A``), scalars as :func:`numba.typeof` types them."""
    if getattr(value, "ndim", 0) and hasattr(value, "dtype"):
        contiguous = (value.is_c_contiguous() if hasattr(value, "is_c_contiguous")
                      else value.flags["C_CONTIGUOUS"])
        return types.Array(numba.from_dtype(value.dtype), value.ndim, "C" if contiguous else "A")
    return numba.typeof(value)


def _record(name, args):
    """Add a launch (or call) to the active :func:`recording`, if any."""
    if _launches is not None:
        _launches.add((name, tuple(arg_type(a) for a in args)))


class _Declared:
    """A function of device code with its declared argument types, in its registry under its qualified name.

    Parameters
    ----------
    function : callable
        The body (plain Python, numba.cuda device code).
    signatures : callable
        ``signatures(f) -> [tuple of numba types]``: the argument types of the launches (or calls) the code
        makes when the values are of float type ``f`` (``F32`` or ``F64``). A function whose types do not
        depend on ``f`` simply ignores it.
    """

    registry = None

    def __init__(self, function, signatures):
        self.py_func = function
        self.name = "%s.%s" % (function.__module__, function.__qualname__)
        self._signatures = signatures
        if self.name in self.registry:
            raise ValueError("%s %s registered twice" % (type(self).__name__, self.name))
        self.registry[self.name] = self

    def signatures(self):
        """Every declared signature (both float types), without repeats, in declaration order."""
        seen = []
        for f in FLOAT_TYPES:
            for sig in self._signatures(f):
                sig = tuple(sig)
                if sig not in seen:
                    seen.append(sig)
        return seen

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.name)


class GpuKernel(_Declared):
    """A numba.cuda kernel with its declared launch signatures (see :class:`_Declared`)."""

    registry = KERNELS

    def __init__(self, function, signatures):
        super().__init__(function, signatures)
        self._dispatcher = None

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
            _record(self.name, args)
            launch(*args)

        return run


class GpuDevice(_Declared):
    """A numba.cuda device function with the argument types kernels call it with (see :class:`_Declared`).

    Its :attr:`dispatcher` (``numba.cuda.jit(device=True)``) is made at once: a kernel that calls the function
    finds it among its globals when the kernel is compiled, and numba must recognise it there. Making it
    compiles nothing and needs no GPU.
    """

    registry = DEVICE_FUNCTIONS

    def __init__(self, function, signatures):
        super().__init__(function, signatures)
        self.dispatcher = cuda.jit(device=True)(function)

    def recording_call(self):
        """Under the simulator (where a device function is plain Python): a function that records the argument
        types of each call, as :func:`recording` does for launches, then runs the device function."""
        device = self.dispatcher

        def call(*args):
            _record(self.name, args)
            return device(*args)

        return call


def gpu_kernel(signatures):
    """Decorator: register a numba.cuda kernel with its launch signatures (see :class:`GpuKernel`)."""

    def deco(function):
        return GpuKernel(function, signatures)

    return deco


def gpu_device(signatures):
    """Decorator: register a numba.cuda device function with the argument types it is called with.

    Returns what kernels call: the ``numba.cuda.jit(device=True)`` dispatcher, or under the simulator (where a
    device function is plain Python) a function that also records the argument types of each call, so that
    :func:`undeclared` checks calls as it checks launches.
    """

    def deco(function):
        device = GpuDevice(function, signatures)
        return device.recording_call() if numba.config.ENABLE_CUDASIM else device.dispatcher

    return deco


@contextlib.contextmanager
def recording():
    """Collect ``{(name, argument types)}`` of every kernel launch (and, under the simulator, every call of a
    device function) made inside the block."""
    global _launches
    outer = _launches
    _launches = set() if outer is None else outer
    try:
        yield _launches
    finally:
        _launches = outer


def undeclared(launches):
    """The launches (and device-function calls) of a :func:`recording` whose argument types no declared
    signature has, as readable lines."""
    return sorted("%s%s" % (name, tuple(str(t) for t in sig)) for name, sig in launches
                  if sig not in (KERNELS.get(name) or DEVICE_FUNCTIONS[name]).signatures())


def grid_1d(work):
    """``(blocks, threads)`` of a 1-D launch covering ``work`` threads (at least one block): blocks of
    ``THREADS_PER_BLOCK``, or fewer, a whole number of 32-thread warps, for less work (the simulator makes a
    Python thread for every GPU thread, idle ones included)."""
    threads = min(THREADS_PER_BLOCK, 32 * max(1, math.ceil(work / 32)))
    return max(1, math.ceil(work / threads)), threads


def _shared_array_without_race():
    """Under the simulator: make ``cuda.shared.array`` hand every thread of a block the same array.

    numba-cuda's simulator (0.30) runs a block's threads as Python threads and keys a block's shared arrays by
    the calling line, but looks the key up and stores a new array in two steps: two threads switched between
    those steps each get an array of their own, and a block reduction then reads the other threads' partials
    from the wrong one (rare at the default thread switch interval, seen at a short one). ``dict.setdefault``
    makes the look-up and the store one step, so all threads keep the first array stored.
    """
    import sys
    import traceback

    import numpy as np
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support
    original = kernelapi.FakeCUDAShared.array
    if getattr(original, "without_race", False):
        return

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:          # the simulator's own errors and dynamic shared memory
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]     # the kernel's file and line
        return self._allocations.setdefault(caller, np.empty(shape, dtype))

    array.without_race = True
    kernelapi.FakeCUDAShared.array = array


if numba.config.ENABLE_CUDASIM:
    _shared_array_without_race()
