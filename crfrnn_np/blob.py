"""Blob: the unit of data that flows through a net.

A :class:`Blob` holds two arrays of identical shape, ``data`` (forward values) and ``diff`` (the gradient of the
net's loss with respect to ``data``), exactly as Caffe's ``Blob``. Arrays are C-ordered NumPy arrays (N x C x H x W
for images) of the net's dtype, allocated lazily on first access so that a TEST-phase net that never runs
backward never pays for its diffs.

Diff semantics (the three rules every layer obeys; they are tested in ``tests/layers/test_split.py``,
``tests/crfrnn_np/test_net.py``, ``tests/crfrnn_np/test_blob.py`` and every layer's tests)
-------------------------------------------------------------------------------------------------
1. ``Layer.backward`` **overwrites** the diffs of its bottom blobs.
2. Parameter blobs (``layer.blobs``) **accumulate** their diffs (``+=``); the solver zeroes them before each
   iteration, so ``iter_size`` accumulation and weight sharing work.
3. Fan-out is never implicit: when one top feeds several bottoms the net inserts a ``Split`` layer whose
   backward **sums** the diffs of its tops into its bottom.

A layer may either write into ``top.data`` in place or assign a new array of the blob's shape to it; the
setter checks the shape and casts the dtype.

Device-resident blobs (``backend="cuda"``)
----------------------------------------
Each of ``data`` and ``diff`` is a :class:`~crfrnn_np.synced_memory.SyncedMemory`: a host copy and a device
copy, synchronised lazily with Caffe's rule. Device layers read ``gpu_data()`` / ``gpu_diff()`` and write
``mutable_gpu_data()`` / ``mutable_gpu_diff()``. On the host, ``cpu_data()`` / ``cpu_diff()`` read (a copy
comes back only when the device's is newer); the ``data`` / ``diff`` properties and their setters are for
writing too (Caffe's ``mutable_cpu_data``): they mark the host copy as the newer one, so the next device read
copies it across. A blob on the CPU backend never touches the device and behaves exactly as before.
"""
import numpy as np

from .errors import ShapeError
from .synced_memory import ReshapedMemory, SyncedMemory

#: Largest number of elements a single blob may hold (Caffe: INT_MAX). Checked before allocating so that an
#: absurd shape fails with a message instead of a MemoryError or a machine that swaps.
MAX_BLOB_COUNT = 2**31 - 1


def shape_string(shape):
    """Caffe's shape string, ``'1 3 500 500 (750000)'``."""
    count = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    return " ".join(str(int(d)) for d in shape) + " (%d)" % count


def check_shape(shape, where=""):
    """Return ``shape`` as a tuple of ints after checking it is non-negative and not absurdly large.

    Raises
    ------
    ShapeError
        If a dimension is negative or the element count exceeds :data:`MAX_BLOB_COUNT`.
    """
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ShapeError("%sshape %r is not a sequence of integers" % (where, shape)) from None
    if any(d < 0 for d in shape):
        raise ShapeError("%sshape %s has a negative dimension" % (where, " ".join(map(str, shape))))
    count = 1
    for d in shape:
        count *= d
    if count > MAX_BLOB_COUNT:
        raise ShapeError("%sshape %s has %d elements, more than the limit of %d"
                         % (where, " ".join(map(str, shape)), count, MAX_BLOB_COUNT))
    return shape


class Blob:
    """A named pair of arrays, ``data`` and ``diff``, of one shape and dtype.

    Parameters
    ----------
    shape : sequence of int
        Initial shape, e.g. ``(N, C, H, W)``; ``()`` is a scalar (loss) blob.
    dtype : numpy dtype, optional
        ``float32`` (default) or ``float64``.
    name : str, optional
        The blob's name in the net, used in error messages.
    """

    def __init__(self, shape=(), dtype=np.float32, name=""):
        self.name = name
        self.dtype = np.dtype(dtype)
        self._shape = check_shape(shape, self._where())
        self._new_memory()

    def _new_memory(self):
        self._data = SyncedMemory(self._shape, self.dtype)
        self._diff = SyncedMemory(self._shape, self.dtype)

    def _where(self):
        return "blob '%s': " % self.name if self.name else ""

    # -- shape -------------------------------------------------------------------------------------------
    @property
    def shape(self):
        """Tuple of ints."""
        return self._shape

    @property
    def count(self):
        """Number of elements."""
        return int(np.prod(self._shape, dtype=np.int64)) if self._shape else 1

    @property
    def num_axes(self):
        return len(self._shape)

    def shape_string(self):
        return shape_string(self._shape)

    def canonical_axis(self, axis):
        """Caffe's ``CanonicalAxisIndex``: a negative axis counts from the end."""
        n = len(self._shape)
        if not -n <= axis < n and not (n == 0 and axis in (0, -1)):
            raise ShapeError("%saxis %d out of range for a %d-axis blob of shape %s"
                             % (self._where(), axis, n, self.shape_string()))
        return axis + n if axis < 0 else axis

    def count_range(self, start, end=None):
        """Product of dims ``start..end-1`` (Caffe's ``count(start, end)``)."""
        end = len(self._shape) if end is None else end
        return int(np.prod(self._shape[start:end], dtype=np.int64))

    def reshape(self, shape):
        """Change the shape; the arrays are reallocated (zeroed) only if the shape actually changed."""
        shape = check_shape(shape, self._where())
        if shape != self._shape:
            self._shape = shape
            self._new_memory()

    def reshape_like(self, other):
        self.reshape(other.shape)

    # -- arrays ------------------------------------------------------------------------------------------
    def _coerce(self, value, what):
        value = np.asarray(value)
        if value.shape != self._shape:
            if value.size == self.count:
                value = value.reshape(self._shape)
            else:
                raise ShapeError("%scannot assign %s of shape %s to a blob of shape %s"
                                 % (self._where(), what, shape_string(value.shape), self.shape_string()))
        if value.dtype != self.dtype:
            value = value.astype(self.dtype)
        return value

    @property
    def data(self):
        """The host array of the data, for reading and writing (marks the host copy newer)."""
        return self._data.mutable_cpu()

    @data.setter
    def data(self, value):
        self._data.set_cpu(self._coerce(value, "data"))

    @property
    def diff(self):
        """The host array of the diff, for reading and writing (marks the host copy newer)."""
        return self._diff.mutable_cpu()

    @diff.setter
    def diff(self, value):
        self._diff.set_cpu(self._coerce(value, "diff"))

    def cpu_data(self):
        """The host data for reading only (copied back only when the device copy is newer)."""
        return self._data.cpu()

    def cpu_diff(self):
        return self._diff.cpu()

    def host_data_current(self):
        """Whether the host copy of the data is up to date (SyncedMemory head ``CPU`` or ``SYNCED``), so that
        ``cpu_data()`` copies nothing."""
        from .synced_memory import CPU, SYNCED
        return self._data.head in (CPU, SYNCED)

    def data_version(self):
        """``(serial, stamp)`` of the data: unchanged between two calls exactly when the data was not handed
        out for writing in between (:mod:`crfrnn_np.synced_memory`); how the device lattice cache knows an
        image is the same without reading it back."""
        return self._data.serial, self._data.stamp

    def gpu_data(self):
        """The device data for reading (copied across only when the host copy is newer)."""
        return self._data.gpu()

    def gpu_diff(self):
        return self._diff.gpu()

    def mutable_gpu_data(self):
        """The device data for writing: the device copy becomes the newer one."""
        return self._data.mutable_gpu()

    def mutable_gpu_diff(self):
        return self._diff.mutable_gpu()

    def has_data(self):
        """True when the data array exists (host or device)."""
        return self._data.allocated()

    def has_diff(self):
        """True when the diff array has been allocated (something wrote or read it)."""
        return self._diff.allocated()

    def release(self):
        """Drop both arrays, host and device (they are reallocated as zeros on next access); bounds memory."""
        self._new_memory()

    def share_data(self, other):
        """Make this blob's data the very memory of ``other``, host and device (same shape, or another shape of
        the same count: then this blob sees that memory with its own shape)."""
        self._data = self._shared(other, "data")

    def share_diff(self, other):
        self._diff = self._shared(other, "diff")

    def _shared(self, other, what):
        if getattr(type(other), what) is getattr(Blob, what):
            memory = getattr(other, "_" + what)
            if other.shape == self._shape:
                return memory
            if other.count != self.count:
                raise ShapeError("%scannot share the %s of blob '%s' (%s) with shape %s" % (
                    self._where(), what, other.name, other.shape_string(), self.shape_string()))
            return ReshapedMemory(memory, self._shape)
        # a blob whose arrays are views of another's (the net's reshaped shared parameters): its host array
        memory = SyncedMemory(self._shape, self.dtype)
        memory.set_cpu(getattr(other, what))
        return memory

    def asum_data(self):
        return float(np.abs(self.cpu_data()).sum())

    def __repr__(self):
        return "Blob(%r, shape=%s, dtype=%s)" % (self.name, self.shape_string(), self.dtype.name)

