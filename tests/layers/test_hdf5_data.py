"""HDF5Data: batches, file wrap-around, shuffling, cursor state and clear errors."""
import pathlib

import h5py
import numpy as np
import pytest

import crfrnn_np as cn
from crfrnn_np import NetError
from crfrnn_np.testing import LayerTestCase


def write_h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f[k] = v


def make_files(tmp_path, sizes=(3, 4)):
    """Files whose rows hold their global row index: data[r] = [g, 10g], label[r] = g."""
    names, start = [], 0
    for k, n in enumerate(sizes):
        g = np.arange(start, start + n, dtype=np.float64)
        write_h5(tmp_path / ("part%d.h5" % k), data=np.stack([g, 10 * g], 1).astype(np.float32),
                 label=g.astype(np.int32))
        names.append("part%d.h5" % k)
        start += n
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n\n")
    return start


def net_text(source, batch, shuffle=False):
    return ('name: "h" layer { name: "d" type: "HDF5Data" top: "data" top: "label" '
            'hdf5_data_param { source: "%s" batch_size: %d shuffle: %s } }'
            % (source, batch, "true" if shuffle else "false"))


def test_batches_in_order_across_files_and_wrap(tmp_path):
    total = make_files(tmp_path)
    net = cn.Net(cn.proto.parse(net_text(tmp_path / "list.txt", 5)), dtype="float64")
    assert net.blobs["data"].shape == (5, 2) and net.blobs["label"].shape == (5,)
    seen = []
    for _ in range(3):
        out = net.forward()
        np.testing.assert_array_equal(out["data"][:, 1], 10 * out["label"])
        seen.extend(out["label"].tolist())
    assert seen == [i % total for i in range(15)]


def test_relative_names_resolve_against_the_list_folder(tmp_path, monkeypatch):
    make_files(tmp_path)
    monkeypatch.chdir("/")
    net = cn.Net(cn.proto.parse(net_text(tmp_path / "list.txt", 2)))
    np.testing.assert_array_equal(net.forward()["label"], [0, 1])


def test_shuffle_visits_every_row_once_per_pass(tmp_path):
    make_files(tmp_path, sizes=(6,))
    cn.random.set_seed(3)
    net = cn.Net(cn.proto.parse(net_text(tmp_path / "list.txt", 3, shuffle=True)))
    first = np.concatenate([net.forward()["label"].copy() for _ in range(2)])
    second = np.concatenate([net.forward()["label"].copy() for _ in range(2)])
    assert sorted(first.tolist()) == list(range(6)) == sorted(second.tolist())
    assert first.tolist() != list(range(6)) or second.tolist() != list(range(6))


def test_state_round_trip(tmp_path):
    make_files(tmp_path)
    cn.random.set_seed(11)
    net = cn.Net(cn.proto.parse(net_text(tmp_path / "list.txt", 3, shuffle=True)))
    layer = net.layer_dict["d"]
    net.forward()
    net.forward()
    state = layer.get_state()
    rng_state = cn.random.get_state()
    expected = [net.forward()["label"].copy() for _ in range(4)]
    layer.set_state(state)
    cn.random.set_state(rng_state)
    got = [net.forward()["label"].copy() for _ in range(4)]
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


def test_missing_dataset_names_file_and_dataset(tmp_path):
    write_h5(tmp_path / "a.h5", data=np.zeros((4, 2), np.float32))
    (tmp_path / "list.txt").write_text("a.h5\n")
    with pytest.raises(NetError, match=r"a\.h5' has no dataset 'label'"):
        cn.Net(cn.proto.parse(net_text(tmp_path / "list.txt", 2)))


def test_row_count_mismatch(tmp_path):
    write_h5(tmp_path / "a.h5", data=np.zeros((4, 2), np.float32), label=np.zeros(3, np.float32))
    (tmp_path / "list.txt").write_text("a.h5\n")
    with pytest.raises(NetError, match="'label' has 3 rows but 'data' has 4"):
        cn.Net(cn.proto.parse(net_text(tmp_path / "list.txt", 2)))


def test_missing_list_and_empty_list(tmp_path):
    with pytest.raises(NetError, match="cannot read the HDF5 file list"):
        cn.Net(cn.proto.parse(net_text(tmp_path / "nope.txt", 2)))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(NetError, match="names no file"):
        cn.Net(cn.proto.parse(net_text(tmp_path / "empty.txt", 2)))
    make_files(tmp_path)
    with pytest.raises(NetError, match="batch_size must be > 0"):
        cn.Net(cn.proto.parse(net_text(tmp_path / "list.txt", 0)))


class TestHDF5DataBattery(LayerTestCase):
    """A data layer: shapes, dtypes and blob counts only (no bottoms, no gradient)."""
    bottom_shapes = []
    top_shapes = [(2, 2), (2,)]
    gradient = None

    def setup_method(self):
        import tempfile
        self.folder = tempfile.TemporaryDirectory()
        folder = pathlib.Path(self.folder.name)
        write_h5(folder / "rows.h5", data=np.arange(10, dtype=np.float64).reshape(5, 2) / 3,
                 label=np.arange(5, dtype=np.float64))
        (folder / "list.txt").write_text("%s\n" % (folder / "rows.h5"))
        self.snippet = ('layer { name: "d" type: "HDF5Data" top: "data" top: "label" '
                        'hdf5_data_param { source: "%s" batch_size: 2 } }' % (folder / "list.txt"))

    def teardown_method(self):
        self.folder.cleanup()

    def expected_forward(self, bottoms):
        return [np.arange(4).reshape(2, 2) / 3, np.arange(2)]
