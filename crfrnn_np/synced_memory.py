"""SyncedMemory: one array with a host copy and a device copy, synchronised lazily (Caffe's rule).

``head`` says which copy is the newer one:

=========  ======================================================================================
``NONE``    nothing allocated yet; the first access allocates zeros where it is asked for
``CPU``     the host copy is newer (a host write); the device copy, if any, is stale
``GPU``     the device copy is newer (a kernel wrote it); the host copy, if any, is stale
``SYNCED``  both are equal
=========  ======================================================================================

``cpu()`` / ``gpu()`` read: they copy across only when the other side is newer and then mark ``SYNCED``.
``mutable_cpu()`` / ``mutable_gpu()`` are for writing: they sync the same way, then mark their side newer.
Each side is allocated once and kept until the blob's shape changes (a new SyncedMemory), so a forward
allocates nothing after the first. Without a device (``backend="cpu"``) only the host side is ever used.

``stamp`` changes whenever a copy is handed out for writing (``mutable_*``, ``set_*``): a consumer that
derives something costly from the contents (the CRF's bilateral lattice of an image, built on the device)
keeps it while ``(serial, stamp)`` is unchanged, without reading the contents back to compare them.
Stamps come from one process-wide counter, so no two writes anywhere share one.
"""
import itertools

import numpy as np

NONE, CPU, GPU, SYNCED = "NONE", "CPU", "GPU", "SYNCED"

_counter = itertools.count(1)


class SyncedMemory:
    """Host and device copies of one (shape, dtype) array; see the module docstring.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy dtype

    Attributes
    ----------
    serial : int
        Unique to this memory (for the life of the process).
    stamp : int
        Changed by every hand-out for writing; see the module docstring.
    """

    __slots__ = ("shape", "dtype", "host", "device", "head", "serial", "stamp")

    def __init__(self, shape, dtype):
        self.shape = shape
        self.dtype = dtype
        self.host = None
        self.device = None
        self.head = NONE
        self.serial = self.stamp = next(_counter)

    def _written(self, head):
        self.head = head
        self.stamp = next(_counter)

    # -- host side -------------------------------------------------------------------------------------
    def cpu(self):
        """The host array, up to date (copied from the device when that is newer); for reading."""
        if self.head == GPU:
            if self.host is None:
                self.host = np.empty(self.shape, self.dtype)
            self.device.copy_to_host(self.host)
            self.head = SYNCED
        elif self.host is None:
            self.host = np.zeros(self.shape, self.dtype)
            if self.head == NONE:
                self.head = CPU
        return self.host

    def mutable_cpu(self):
        """The host array, up to date, marked as the newer copy (the caller writes it)."""
        host = self.cpu()
        self._written(CPU)
        return host

    def set_cpu(self, array):
        """Make ``array`` (already of the right shape and dtype) the host copy, newer than the device's."""
        self.host = array
        self._written(CPU)

    # -- device side -----------------------------------------------------------------------------------
    def gpu(self):
        """The device array, up to date (copied from the host when that is newer); for reading."""
        from . import cuda_ops
        if self.device is None:
            self.device = cuda_ops.empty(self.shape, self.dtype)
            if self.head == NONE:                 # nothing anywhere yet: zeros, made on the device
                cuda_ops.fill(self.device, 0)
                self.head = GPU
        if self.head == CPU:
            self.device.copy_to_device(self.host)
            self.head = SYNCED
        return self.device

    def mutable_gpu(self):
        """The device array, up to date, marked as the newer copy (a kernel writes it)."""
        device = self.gpu()
        self._written(GPU)
        return device

    def set_gpu(self, array):
        """Make the device array ``array`` the device copy, newer than the host's."""
        self.device = array
        self._written(GPU)

    def allocated(self):
        return self.host is not None or self.device is not None


class ReshapedMemory:
    """Another :class:`SyncedMemory` seen with a different shape of the same element count (Caffe's
    ``ShareData`` between blobs of one count: the Reshape and Flatten tops on the device). Every read and
    write goes to the base memory; the arrays handed out are reshaped views of its arrays (no copy).

    Parameters
    ----------
    base : SyncedMemory
    shape : tuple of int
    """

    __slots__ = ("base", "shape", "dtype")

    def __init__(self, base, shape):
        self.base = base
        self.shape = shape
        self.dtype = base.dtype

    @property
    def head(self):
        return self.base.head

    @property
    def serial(self):
        return self.base.serial

    @property
    def stamp(self):
        return self.base.stamp

    def cpu(self):
        return self.base.cpu().reshape(self.shape)

    def mutable_cpu(self):
        return self.base.mutable_cpu().reshape(self.shape)

    def set_cpu(self, array):
        self.base.set_cpu(array.reshape(self.base.shape))

    def gpu(self):
        return self.base.gpu().reshape(self.shape)

    def mutable_gpu(self):
        return self.base.mutable_gpu().reshape(self.shape)

    def set_gpu(self, array):
        self.base.set_gpu(array.reshape(self.base.shape))

    def allocated(self):
        return self.base.allocated()
