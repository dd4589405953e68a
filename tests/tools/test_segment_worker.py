"""tools/segment_worker.py: labels scaled back by nearest neighbour, threads per worker, errors as results."""
import os

import numpy as np
import pytest

from crfrnn_np import image
from crfrnn_np.tools import segment_worker


def test_resize_labels_nearest_by_hand():
    labels = np.array([[1, 2], [3, 4]], np.uint8)
    # 2 -> 5 rows: output row i takes input row floor((i + 1/2) * 2 / 5): 0, 0, 1, 1, 1
    np.testing.assert_array_equal(image.resize_labels(labels, 5, 3),
                                  [[1, 2, 2], [1, 2, 2], [3, 4, 4], [3, 4, 4], [3, 4, 4]])
    assert image.resize_labels(labels, 2, 2) is labels
    big = np.arange(20, dtype=np.uint8).reshape(4, 5)
    np.testing.assert_array_equal(image.resize_labels(image.resize_labels(big, 8, 10), 4, 5), big)


def test_threads_per_worker_and_their_environment():
    assert segment_worker.threads_per_worker(2, cores=8) == 4
    assert segment_worker.threads_per_worker(3, cores=2) == 1
    assert segment_worker.thread_env(3) == {"OPENBLAS_NUM_THREADS": "3", "OMP_NUM_THREADS": "3",
                                            "MKL_NUM_THREADS": "3", "NUMBA_NUM_THREADS": "3"}


@pytest.fixture
def settings(tmp_path, segment_data):
    model, weights = segment_data.make_net(str(tmp_path))
    return {"model": model, "weights": weights, "dtype": "float32", "backend": "cpu", "any_size": False,
            "max_size": None, "panel": True, "num_classes": 4, "ignore_label": 255}


def test_segment_one_returns_pngs(settings, tmp_path, segment_data):
    path = segment_data.make_images(str(tmp_path / "im"), [(40, 24)])[0]
    result = segment_worker.segment_one(settings, (7, path, None))
    assert result["index"] == 7 and result["error"] is None and result["confusion"] is None
    labels_path = tmp_path / "labels.png"
    labels_path.write_bytes(result["png"])
    assert image.read_label_png(labels_path).shape == (40, 24)
    assert result["panel"][:8] == b"\x89PNG\r\n\x1a\n"


def test_segment_one_reports_bad_files_without_raising(settings, tmp_path, segment_data):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = segment_worker.segment_one(settings, (0, str(broken), None))
    assert result["png"] is None and not result["fatal"]
    assert result["error"].startswith(str(broken)) and "cannot read image" in result["error"]
    path = segment_data.make_images(str(tmp_path / "im"), [(20, 20)])[0]
    result = segment_worker.segment_one(settings, (0, path, str(tmp_path / "no_truth.png")))
    assert "no_truth.png: cannot read label map" in result["error"]
    result = segment_worker.segment_one(dict(settings, model=os.fspath(tmp_path / "nope.prototxt")), (0, path, None))
    assert result["fatal"] and "nope.prototxt" in result["error"]
