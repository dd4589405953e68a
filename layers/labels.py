"""Class-index labels of SoftmaxWithLoss and Accuracy: reading them and checking their range, on both backends.

A label blob holds one float per position; the label is the value truncated to an integer (``astype(int64)``,
as Caffe's ``static_cast<int>``). With ``ignore_label`` set, positions holding it are skipped; every other
label must lie in ``0..C-1``, else the layer raises :class:`crfrnn_np.NetError` naming the layer, the blob,
the first bad position (an index into the blob's shape, in C order) and the label.

On the ``cuda`` backend the check runs where the labels already are (Caffe's SyncedMemory rule, see
``crfrnn_np/synced_memory.py``): when the label blob's host copy is current (labels fed from the host with
``net.forward(label=...)``, or written by a data layer, which runs on the host) :func:`host_labels` hands it
out and the check runs there, so no label crosses; only labels that exist on the device alone (a device layer
made them) are checked on the device, at the price of a small read back (see the two layers).
"""
import numpy as np


def int_labels(data, ignore_label):
    """The integer labels of ``data`` and the mask of the positions that count.

    Parameters
    ----------
    data : ndarray
        The label blob's values, any shape.
    ignore_label : int or None

    Returns
    -------
    labels : ndarray of int64, ``data``'s shape
    valid : ndarray of bool, ``data``'s shape
        False where the label is the ignore label.
    """
    labels = np.asarray(data).astype(np.int64)
    valid = np.ones(labels.shape, bool) if ignore_label is None else labels != ignore_label
    return labels, valid


def check_range(layer, blob, labels, valid, channels):
    """Raise the layer's error for the first valid label (C order) outside ``0..channels-1``.

    Parameters
    ----------
    layer : Layer
    blob : Blob
        The label blob (its name and shape go into the message).
    labels, valid : ndarray
        :func:`int_labels` of the blob's data, any shape of ``blob.count`` elements.
    channels : int
    """
    bad = valid & ((labels < 0) | (labels >= channels))
    if bad.any():
        flat = int(np.flatnonzero(bad.reshape(-1))[0])
        raise label_error(layer, blob, flat, int(labels.reshape(-1)[flat]), channels)


def label_error(layer, blob, flat, label, channels):
    """The error for ``label`` at flat position ``flat`` of the label blob (built, not raised)."""
    where = tuple(int(i) for i in np.unravel_index(flat, blob.shape)) if blob.shape else ()
    return layer.error("label %d in bottom '%s' at %s is outside 0..%d"
                       % (label, blob.name, "(%s)" % ", ".join(map(str, where)), channels - 1))


def device_label_error(layer, blob, flat, channels):
    """:func:`label_error` for a position found on the device: the label blob's value there is read back (one
    copy of the blob, made only to write this message)."""
    value = blob.cpu_data().reshape(-1)[flat:flat + 1]
    return label_error(layer, blob, flat, int(value.astype(np.int64)[0]), channels)


def host_labels(blob):
    """The host array of ``blob``'s data when it is current (head ``CPU`` or ``SYNCED``), else None.

    Reading it copies nothing. None means the labels are newer on the device (a device layer wrote them) or
    were never written.
    """
    return blob.cpu_data() if blob.host_data_current() else None


__all__ = ["int_labels", "check_range", "label_error", "device_label_error", "host_labels"]
