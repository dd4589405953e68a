"""Reading and writing solver snapshots: weights, ``.solverstate`` and the exact-resume sidecar.

Formats (spec caffe.md §5.2-5.3)
--------------------------------
``<prefix>_iter_<N>.solverstate``
    A ``SolverState`` protobuf: ``iter``, ``learned_net`` (path of the weights written with it),
    ``history`` (one BlobProto per learnable parameter in net order; Adam and AdaDelta write all first
    buffers, then all second buffers) and ``current_step``.
``<prefix>_iter_<N>.solverstate.h5``
    HDF5: int32 datasets ``iter`` and ``current_step`` of shape (1,), a fixed-length string ``learned_net``
    and a group ``history`` with datasets ``"0"`` .. ``"K-1"``.
``<solverstate>.resume`` (crfrnn-np's sidecar, JSON)
    What Caffe's state leaves out and an exact resume needs: the engine RNG state (crfrnn_np.random) and the
    cursor of every data layer that has ``get_state``/``set_state`` (HDF5Data: file order, current file,
    row order, current row), for the train net and each test net. Caffe's own solverstates have no sidecar;
    they restore iteration, step index, history and weights, and the data streams start afresh.

Every file is written under a temporary name in the same folder and moved into place with ``os.replace``,
so an interrupted snapshot never leaves a truncated file under the final name.
"""
import json
import os

import numpy as np

from .errors import SolverError

SIDECAR_SUFFIX = ".resume"


def atomic_write(path, writer, keep_suffix=""):
    """Call ``writer(tmp_path)`` then move ``tmp_path`` onto ``path``.

    ``keep_suffix`` is appended to the temporary name (for writers that choose a format from the suffix).
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SolverError("cannot write snapshot '%s': folder '%s' does not exist" % (path, folder))
    tmp = os.path.join(folder, ".%s.tmp%d%s" % (os.path.basename(path), os.getpid(), keep_suffix))
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


# -- BlobProto helpers ---------------------------------------------------------------------------------------
def blob_proto_from_array(array):
    """A ``BlobProto`` message holding ``array`` (``data`` for float32, ``double_data`` for float64)."""
    from .proto import Message
    bp = Message("BlobProto")
    bp.mutable("shape").dim = [int(d) for d in array.shape]
    flat = np.ascontiguousarray(array).reshape(-1)
    if array.dtype == np.float64:
        bp.double_data = flat.copy()
    else:
        bp.data = flat.astype(np.float32)
    return bp


def array_from_blob_proto(bp):
    """``(shape, flat values, legacy)`` of a BlobProto; ``legacy`` when the 4-D num/channels/... dims are used."""
    legacy = any(bp.has(f) for f in ("num", "channels", "height", "width"))
    if legacy:
        shape = (bp.num, bp.channels, bp.height, bp.width)
    else:
        shape = tuple(int(d) for d in bp.shape.dim)
    values = bp.double_data if len(bp.double_data) else bp.data
    return shape, np.asarray(values).reshape(-1), legacy


def shapes_match(target_shape, shape, legacy):
    """Caffe's ``ShapeEquals``: legacy 4-D dims match the target left-padded with ones to 4 axes."""
    target_shape = tuple(int(d) for d in target_shape)
    if legacy:
        if len(target_shape) > 4:
            return False
        return (1,) * (4 - len(target_shape)) + target_shape == tuple(shape)
    return target_shape == tuple(shape)


# -- solverstate ---------------------------------------------------------------------------------------------
def write_state(path, iteration, learned_net, history, current_step, hdf5):
    """Write a solverstate (binary protobuf, or HDF5 when ``hdf5``) atomically."""
    if hdf5:
        import h5py

        def writer(tmp):
            with h5py.File(tmp, "w") as f:
                f.create_dataset("iter", data=np.array([iteration], np.int32))
                f.create_dataset("learned_net", data=np.bytes_(learned_net.encode("utf-8")))
                f.create_dataset("current_step", data=np.array([current_step], np.int32))
                g = f.create_group("history")
                for i, h in enumerate(history):
                    g.create_dataset(str(i), data=h)
    else:
        from . import proto
        from .proto import Message
        state = Message("SolverState", iter=int(iteration), learned_net=learned_net,
                        current_step=int(current_step))
        state.history = [blob_proto_from_array(h) for h in history]

        def writer(tmp):
            data = proto.encode(state)
            with open(tmp, "wb") as f:
                f.write(data)
    return atomic_write(path, writer)


def read_state(path):
    """Read a solverstate.

    Returns
    -------
    dict
        ``iter`` (int), ``current_step`` (int), ``learned_net`` (str, "" when absent) and ``history``: a list
        of ``(shape, flat values, legacy)``.
    """
    if not os.path.isfile(path):
        raise SolverError("solver state '%s' not found" % path)
    if str(path).endswith(".h5"):
        import h5py
        try:
            with h5py.File(path, "r") as f:
                for name in ("iter", "history"):
                    if name not in f:
                        raise SolverError("solver state '%s': no '%s' in this HDF5 file" % (path, name))
                out = {"iter": int(np.asarray(f["iter"]).reshape(-1)[0]),
                       "current_step": (int(np.asarray(f["current_step"]).reshape(-1)[0])
                                        if "current_step" in f else 0),
                       "learned_net": "", "history": []}
                if "learned_net" in f:
                    v = f["learned_net"][()]
                    out["learned_net"] = (v.decode("utf-8") if isinstance(v, bytes) else str(v)).rstrip("\0")
                hist = f["history"]
                for i in range(len(hist)):
                    if str(i) not in hist:
                        raise SolverError("solver state '%s': history dataset '%d' missing" % (path, i))
                    a = np.asarray(hist[str(i)])
                    out["history"].append((a.shape, a.reshape(-1), False))
                return out
        except OSError as e:
            raise SolverError("solver state '%s' is not a readable HDF5 file (%s)" % (path, e)) from None
    from . import proto
    with open(path, "rb") as f:
        data = f.read()
    state = proto.decode(data, "SolverState", filename=str(path))
    return {"iter": int(state.iter), "current_step": int(state.current_step),
            "learned_net": state.learned_net if state.has("learned_net") else "",
            "history": [array_from_blob_proto(bp) for bp in state.history]}


# -- sidecar -------------------------------------------------------------------------------------------------
def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def write_sidecar(state_path, content):
    """Write the exact-resume sidecar of ``state_path`` (JSON) atomically."""
    text = json.dumps(_jsonable(content))

    def writer(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    return atomic_write(state_path + SIDECAR_SUFFIX, writer)


def read_sidecar(state_path):
    """The sidecar's content, or ``None`` when there is none."""
    path = str(state_path) + SIDECAR_SUFFIX
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SolverError("resume sidecar '%s' cannot be read (%s)" % (path, e)) from None
