"""Shared fixtures.

Anchors (real files no one here wrote) are found through ``CRFRNN_ANCHORS`` or ``../shared/anchors``. Where
they are absent, tests that need them skip with that reason, except under ``CI=true`` where absence fails.
"""
import gzip
import os
import pathlib

# Run BLAS and numba kernels single-threaded unless told otherwise (set before numpy loads BLAS): the suite
# runs in two pytest workers on two cores, and oversubscribed BLAS threads make small GEMMs crawl.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def anchors_dir():
    env = os.environ.get("CRFRNN_ANCHORS")
    if env:
        return pathlib.Path(env)
    return ROOT.parent / "shared" / "anchors"


def need_anchor(*parts):
    """Path of an anchor file; skip (or fail under CI=true) when it is missing."""
    path = anchors_dir().joinpath(*parts)
    if not path.exists():
        msg = "anchor %s not found (set CRFRNN_ANCHORS or provide ../shared/anchors)" % path
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def anchor():
    """``anchor("caffe_lenet", "lenet.prototxt")`` -> pathlib.Path (skips/fails when absent)."""
    return need_anchor


@pytest.fixture
def rng():
    return np.random.default_rng(1701)


@pytest.fixture(scope="session")
def mnist_test_set():
    """The 10,000 MNIST test images (uint8, (10000, 1, 28, 28)) and labels from the LeNet anchor."""
    with gzip.open(need_anchor("caffe_lenet", "mnist", "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(need_anchor("caffe_lenet", "mnist", "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


@pytest.fixture
def thread_count():
    """``thread_count(n)`` runs the CPU kernels on n threads for the rest of the test (restored after)."""
    from crfrnn_np import threads
    before = threads.num_threads()
    yield threads.set_num_threads
    threads.set_num_threads(before)
