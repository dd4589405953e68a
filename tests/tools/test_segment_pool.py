"""tools/segment_pool.py: a dask.distributed cluster of two worker processes gives the local run's bytes."""
import os

from crfrnn_np.tools import segment_pool
from crfrnn_np.tools.main import main


def test_environ_sets_and_restores():
    os.environ.pop("CRFRNN_TEST_VAR", None)
    before = os.environ.get("OPENBLAS_NUM_THREADS")
    with segment_pool._environ({"CRFRNN_TEST_VAR": "3", "OPENBLAS_NUM_THREADS": "5"}):
        assert os.environ["CRFRNN_TEST_VAR"] == "3" and os.environ["OPENBLAS_NUM_THREADS"] == "5"
    assert "CRFRNN_TEST_VAR" not in os.environ and os.environ.get("OPENBLAS_NUM_THREADS") == before


def test_dask_local_cluster_matches_the_local_run(tmp_path, capsys, segment_data):
    import distributed                         # the dask extra is part of the test extra
    model, weights = segment_data.make_net(str(tmp_path))
    images = segment_data.make_images(str(tmp_path / "images"), [(24, 30), (40, 32), (18, 18), (32, 50)] * 3)
    segment_data.make_truth(str(tmp_path / "truth"), images)
    args = ["segment", "--model", model, "--weights", weights, "--images", str(tmp_path / "images"),
            "--ground-truth", str(tmp_path / "truth"), "--num-classes", str(segment_data.NUM_CLASSES), "--output-dir"]
    assert main(args + [str(tmp_path / "local")]) == 0
    local = capsys.readouterr().out.splitlines()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  host="127.0.0.1") as cluster:
        assert main(args + [str(tmp_path / "dask"), "--scheduler", cluster.scheduler_address]) == 0
    remote = capsys.readouterr().out.splitlines()
    assert segment_data.read_folder(str(tmp_path / "dask")) == segment_data.read_folder(str(tmp_path / "local"))
    assert len(segment_data.read_folder(str(tmp_path / "dask"))) == 12
    assert remote[1:] == local[1:]                     # the same confusion matrix, so the same scores
