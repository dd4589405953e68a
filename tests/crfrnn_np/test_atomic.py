"""Atomic writes: a reader sees the old file or the new one, never a half-written one, and no temporary
file is left behind, on success or on error."""
import os

import pytest

from crfrnn_np.atomic import atomic_path, write_bytes


def test_write_bytes_replaces_by_rename(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"old contents")
    with open(path, "rb") as reader:              # a reader holding the old file keeps seeing it
        write_bytes(path, b"new")
        assert reader.read() == b"old contents"
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["w.bin"]


def test_mode_is_that_of_a_plain_open(tmp_path):
    umask = os.umask(0o022)
    try:
        write_bytes(tmp_path / "a", b"x")
        with open(tmp_path / "b", "wb") as f:
            f.write(b"x")
    finally:
        os.umask(umask)
    assert os.stat(tmp_path / "a").st_mode == os.stat(tmp_path / "b").st_mode


def test_error_keeps_the_target_and_removes_the_temporary(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("intact")
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_path(path) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path)      # same folder: the rename cannot cross devices
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("writer failed")
    assert path.read_text() == "intact"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_new_file_in_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with atomic_path("rel.txt") as tmp:
        with open(tmp, "w") as f:
            f.write("hello")
    assert (tmp_path / "rel.txt").read_text() == "hello"
