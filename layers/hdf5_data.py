"""HDF5Data: batches read from HDF5 files (Caffe's ``HDF5DataLayer``).

``hdf5_data_param { source batch_size shuffle }``. ``source`` is a text file listing ``.h5`` files, one per
line (blank lines ignored; relative names are resolved against the source file's folder). Each file holds one
dataset per top, named after the top, all with the same number of rows ``N`` (axis 0). Top ``j`` has shape
``(batch_size,) + dataset_j.shape[1:]``; values are cast to the net's dtype (labels become floats, as in
Caffe).

Forward fills row ``i`` of every top with row ``perm[r]`` of the current file and advances ``r``; at the end
of a file the next one is loaded (files in list order, or a shuffled order re-drawn on every pass when
``shuffle``); with ``shuffle`` the rows of each file are visited in a random order re-drawn on every pass.
Shuffling draws from the engine's RNG (``crfrnn_np.random.rng()``). No backward (data has no gradient).

``get_state()``/``set_state(state)`` expose the cursor (file order, current file, row order, current row)
so that a solver snapshot resumes with exactly the next batch.
"""
import os

import numpy as np

from crfrnn_np.errors import NetError
from crfrnn_np.layer import Layer, register_layer
from crfrnn_np.random import rng


def _source_path(layer, source):
    """Resolve ``source``: as given, else relative to the prototxt that defines the layer."""
    if os.path.isabs(source) or os.path.isfile(source):
        return source
    loc = layer.layer_param.where("hdf5_data_param") or layer.layer_param.where()
    if loc:
        proto_file = loc.rsplit(":", 2)[0]
        alt = os.path.join(os.path.dirname(os.path.abspath(proto_file)), source)
        if os.path.isfile(alt):
            return alt
    return source


@register_layer("HDF5Data")
class HDF5DataLayer(Layer):
    """Rows of HDF5 datasets named after the tops, ``batch_size`` per forward."""

    exact_num_bottom = 0
    min_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.layer_param.hdf5_data_param
        if p.batch_size <= 0:
            raise self.error("hdf5_data_param.batch_size must be > 0 (got %d)" % p.batch_size,
                             field="hdf5_data_param")
        self.batch_size = int(p.batch_size)
        self.shuffle = bool(p.shuffle)
        self.top_names = list(self.layer_param.top)
        if not p.source:
            raise self.error("hdf5_data_param.source is not set", field="hdf5_data_param")
        source = _source_path(self, p.source)
        try:
            with open(source) as f:
                lines = [ln.strip() for ln in f]
        except OSError as e:
            raise self.error("cannot read the HDF5 file list '%s' (%s)" % (p.source, e.strerror or e),
                             field="hdf5_data_param") from None
        folder = os.path.dirname(os.path.abspath(source))
        self.filenames = [ln if os.path.isabs(ln) else os.path.join(folder, ln) for ln in lines if ln]
        if not self.filenames:
            raise self.error("the HDF5 file list '%s' names no file" % source, field="hdf5_data_param")
        self.file_permutation = np.arange(len(self.filenames))
        if self.shuffle:
            rng().shuffle(self.file_permutation)
        self.current_file = 0
        self._loaded = None
        self._load(self.file_permutation[0])
        self.current_row = 0
        for t, a in zip(top, self._arrays):
            t.reshape((self.batch_size,) + a.shape[1:])

    def _load(self, index, permute=True):
        import h5py
        name = self.filenames[index]
        arrays = []
        try:
            with h5py.File(name, "r") as f:
                for top_name in self.top_names:
                    if top_name not in f:
                        raise self.error("HDF5 file '%s' has no dataset '%s' (it has: %s)"
                                         % (name, top_name, ", ".join(sorted(f.keys())) or "nothing"))
                    ds = f[top_name]
                    if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiub":
                        raise self.error("HDF5 file '%s': '%s' is not a numeric dataset" % (name, top_name))
                    a = np.asarray(ds, dtype=self.dtype)
                    arrays.append(a.reshape(1) if a.ndim == 0 else a)
        except OSError as e:
            raise self.error("cannot read HDF5 file '%s' (%s)" % (name, e)) from None
        rows = arrays[0].shape[0]
        for top_name, a in zip(self.top_names, arrays):
            if a.shape[0] != rows:
                raise self.error("HDF5 file '%s': dataset '%s' has %d rows but '%s' has %d"
                                 % (name, top_name, a.shape[0], self.top_names[0], rows))
        if rows == 0:
            raise self.error("HDF5 file '%s' has datasets with 0 rows" % name)
        if self._loaded is not None:
            for top_name, a, old in zip(self.top_names, arrays, self._arrays):
                if a.shape[1:] != old.shape[1:]:
                    raise self.error("HDF5 file '%s': dataset '%s' rows have shape %s, but %s in '%s'"
                                     % (name, top_name, a.shape[1:], old.shape[1:], self._loaded))
        self._arrays = arrays
        self._loaded = name
        self._loaded_index = int(index)
        if permute:
            self.data_permutation = np.arange(rows)
            if self.shuffle:
                rng().shuffle(self.data_permutation)

    def reshape(self, bottom, top):
        for t, a in zip(top, self._arrays):
            t.reshape((self.batch_size,) + a.shape[1:])

    def _next(self):
        self.current_row += 1
        if self.current_row == self._arrays[0].shape[0]:
            if len(self.filenames) > 1:
                self.current_file += 1
                if self.current_file == len(self.filenames):
                    self.current_file = 0
                    if self.shuffle:
                        rng().shuffle(self.file_permutation)
                self._load(self.file_permutation[self.current_file])
            elif self.shuffle:
                rng().shuffle(self.data_permutation)
            self.current_row = 0

    def forward_cpu(self, bottom, top):
        outs = [t.data for t in top]
        for i in range(self.batch_size):
            r = self.data_permutation[self.current_row]
            for out, a in zip(outs, self._arrays):
                out[i] = a[r]
            self._next()

    def backward_cpu(self, top, propagate_down, bottom):
        """Nothing to do: there are no bottoms."""

    # -- cursor, for exact resume -------------------------------------------------------------------------
    def get_state(self):
        """The cursor: ``{"file_permutation", "current_file", "data_permutation", "current_row"}``."""
        return {"file_permutation": [int(i) for i in self.file_permutation], "current_file": self.current_file,
                "data_permutation": [int(i) for i in self.data_permutation], "current_row": self.current_row}

    def set_state(self, state):
        """Put the cursor back where :meth:`get_state` found it (same file list)."""
        try:
            fperm = np.asarray(state["file_permutation"], dtype=np.int64)
            cur = int(state["current_file"])
            dperm = np.asarray(state["data_permutation"], dtype=np.int64)
            row = int(state["current_row"])
        except (KeyError, TypeError, ValueError) as e:
            raise NetError("%sinvalid data cursor in the resume state (%s)" % (self.where(), e)) from None
        if sorted(fperm.tolist()) != list(range(len(self.filenames))) or not 0 <= cur < len(fperm):
            raise NetError("%sthe resume state's file order does not match the %d files of the list"
                           % (self.where(), len(self.filenames)))
        self.file_permutation = fperm
        self.current_file = cur
        if self._loaded_index != fperm[cur]:
            self._load(fperm[cur], permute=False)
        rows = self._arrays[0].shape[0]
        if dperm.shape != (rows,) or not 0 <= row < rows:
            raise NetError("%sthe resume state's row order does not match file '%s' (%d rows)"
                           % (self.where(), self._loaded, rows))
        self.data_permutation = dperm
        self.current_row = row
