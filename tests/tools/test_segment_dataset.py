"""``crfrnn segment --images``: outputs at the images' sizes, a pool identical to one process, re-runs that
skip, a run killed with SIGKILL and finished by a re-run, unreadable images, scoring on the fly, errors."""
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from crfrnn_np import image
from crfrnn_np.tools.main import main
from crfrnn_np.tools.segment_dataset import Progress


# Twelve images around the net's 32 x 32 input: smaller ones are padded, larger ones shrunk (and their
# labels scaled back to the image's size by nearest neighbour).
SIZES = [(20, 30), (32, 32), (40, 50), (17, 23), (25, 25), (48, 36), (30, 20), (31, 29), (64, 40), (22, 28),
         (33, 33), (26, 18)]


@pytest.fixture(scope="module")
def data(tmp_path_factory, segment_data):
    root = tmp_path_factory.mktemp("dataset")
    model, weights = segment_data.make_net(str(root))
    images = segment_data.make_images(str(root / "images"), SIZES)
    segment_data.make_truth(str(root / "truth"), images)
    return {"root": root, "model": model, "weights": weights, "images": str(root / "images"), "paths": images,
            "truth": str(root / "truth")}


def segment_args(data, out, *extra, images=None):
    return ["segment", "--model", data["model"], "--weights", data["weights"], "--images",
            images or data["images"], "--output-dir", str(out)] + list(extra)


@pytest.fixture(scope="module")
def one_worker(data, segment_data):
    """The outputs of a one-process run (the reference every other run must reproduce byte for byte)."""
    out = data["root"] / "one_worker"
    assert main(segment_args(data, out)) == 0
    return segment_data.read_folder(str(out))


def test_outputs_are_palette_label_maps_at_the_image_size(data, one_worker, tmp_path):
    assert sorted(one_worker) == ["img%02d.png" % k for k in range(len(SIZES))]
    for k, (h, w) in enumerate(SIZES):
        with Image.open(io.BytesIO(one_worker["img%02d.png" % k])) as im:
            assert im.mode == "P" and im.size == (w, h)
    # against the single-image form, which also writes at the image's size: the same labels where the image
    # fits the net and where it was shrunk (64 x 40, segmented at 32 x 20 and scaled back by nearest neighbour)
    for k in (0, 8):
        single = tmp_path / ("single%d.png" % k)
        assert main(["segment", "--model", data["model"], "--weights", data["weights"], "--image",
                     data["paths"][k], "--output", str(single)]) == 0
        small = image.read_label_png(single)
        ours = np.asarray(Image.open(io.BytesIO(one_worker["img%02d.png" % k])))
        np.testing.assert_array_equal(ours, small)
    assert small.shape == (64, 40)
    # segmented at 32 x 20: every label of the 64 x 40 map repeats in a 2 x 2 block
    assert np.array_equal(small, np.repeat(np.repeat(small[::2, ::2], 2, axis=0), 2, axis=1))


def test_two_workers_give_identical_bytes_and_scores(data, one_worker, tmp_path, capsys, segment_data):
    out = tmp_path / "two"
    assert main(segment_args(data, out, "--workers", "2", "--panel", "--ground-truth", data["truth"],
                             "--num-classes", str(segment_data.NUM_CLASSES))) == 0
    assert segment_data.read_folder(str(out)) == one_worker
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("segmented 12, skipped 0 (output exists), failed 0 of 12 images")
    with Image.open(out / "panels" / "img02.png") as panel:       # 40 x 50 shrunk to 25 x 32: 3 tiles + 2 gaps
        assert panel.size == (3 * 32 + 2 * 4, 25)
    # the score on the fly is crfrnn evaluate's on the written outputs
    assert main(["evaluate", "--predictions", str(out), "--ground-truth", data["truth"], "--num-classes",
                 str(segment_data.NUM_CLASSES)]) == 0
    assert capsys.readouterr().out.splitlines() == printed[1:]


def test_rerun_skips_finished_images_and_overwrite_redoes_them(data, one_worker, tmp_path, capsys, segment_data):
    listing = tmp_path / "list.txt"                 # relative paths are taken from the list file's folder
    shutil.copy(data["paths"][3], tmp_path / "a.png")
    listing.write_text("# three images\n%s\n\na.png\n%s\n" % (data["paths"][0], data["paths"][1]))
    out = tmp_path / "out"
    assert main(segment_args(data, out, images=str(listing))) == 0
    expected = {"img00.png": one_worker["img00.png"], "img01.png": one_worker["img01.png"],
                "a.png": one_worker["img03.png"]}
    assert segment_data.read_folder(str(out)) == expected
    before = {n: os.stat(out / n) for n in os.listdir(out)}
    os.remove(out / "a.png")
    capsys.readouterr()
    assert main(segment_args(data, out, images=str(listing))) == 0
    assert capsys.readouterr().out.startswith("segmented 1, skipped 2 (output exists), failed 0 of 3")
    for name in ("img00.png", "img01.png"):
        after = os.stat(out / name)
        assert (after.st_ino, after.st_mtime_ns) == (before[name].st_ino, before[name].st_mtime_ns)
    assert main(segment_args(data, out, "--overwrite", images=str(listing))) == 0
    assert capsys.readouterr().out.startswith("segmented 3, skipped 0")
    assert os.stat(out / "img00.png").st_ino != before["img00.png"].st_ino      # replaced by a rename


def test_unreadable_image_is_reported_and_the_run_goes_on(data, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for k in (0, 1):
        shutil.copy(data["paths"][k], folder)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("not an image file name: left out")
    out = tmp_path / "out"
    assert main(segment_args(data, out, images=str(folder))) == 1
    captured = capsys.readouterr()
    failed = [line for line in captured.err.splitlines() if "failed" in line]
    assert len(failed) == 1 and str(folder / "broken.jpg") in failed[0] and "cannot read image" in failed[0]
    assert captured.out.startswith("segmented 2, skipped 0 (output exists), failed 1 of 3 images")
    assert sorted(os.listdir(out)) == ["img00.png", "img01.png"]


def test_run_killed_part_way_then_finished_by_a_rerun(tmp_path, capsys, segment_data):
    """SIGKILL a two-worker run after its first outputs; the re-run keeps them and does the rest."""
    model, weights = segment_data.make_net(str(tmp_path), size=96, iterations=10)        # about 0.06 s an image here
    segment_data.make_images(str(tmp_path / "images"), [(96, 96)] * 12, seed=3)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "crfrnn_np.tools.main", "segment", "--model", model, "--weights", weights,
           "--images", str(tmp_path / "images"), "--output-dir", str(out)]
    proc = subprocess.Popen(cmd + ["--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and sum(n.endswith(".png") for n in os.listdir(out)) >= 2:
            break
        time.sleep(0.005)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30                # the pool's processes notice and exit
    while time.monotonic() < deadline and any(os.path.exists("/proc/%s" % pid) for pid in children):
        time.sleep(0.05)
    assert children and not [pid for pid in children if os.path.exists("/proc/%s" % pid)]
    left = sorted(os.listdir(out))
    finished = [n for n in left if not n.startswith(".")]
    assert 2 <= len(finished) < 12, left
    for name in finished:                       # complete files: each decodes to a full 96 x 96 map
        assert image.read_label_png(out / name).shape == (96, 96)
    stat = {n: os.stat(out / n) for n in finished}
    rerun = cmd[3:]                                       # in this process, one worker: cheaper, same bytes
    assert main(rerun) == 0
    assert capsys.readouterr().out.startswith("segmented %d, skipped %d" % (12 - len(finished), len(finished)))
    assert sorted(os.listdir(out)) == ["img%02d.png" % k for k in range(12)]    # no temporary file left
    for name in finished:
        assert (os.stat(out / name).st_ino, os.stat(out / name).st_mtime_ns) == \
            (stat[name].st_ino, stat[name].st_mtime_ns)
    reference = tmp_path / "reference"
    assert main(rerun[:-1] + [str(reference)]) == 0
    assert segment_data.read_folder(str(out)) == segment_data.read_folder(str(reference))


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["duplicate stem", "missing truth", "no output dir", "no classes", "empty",
                                  "with output", "bad address", "unreachable", "no dask"])
def test_errors_are_one_line(case, data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    args = segment_args(data, out)
    expect = {"no output dir": "--images needs --output-dir", "no classes": "--ground-truth needs --num-classes",
              "empty": "no images", "with output": "not --output", "bad address": "tcp://HOST:PORT",
              "unreachable": "cannot reach the dask scheduler", "no dask": "pip install 'crfrnn-np[dask]'"}
    if case == "duplicate stem":
        folder = tmp_path / "dup"
        folder.mkdir()
        shutil.copy(data["paths"][0], folder / "x.png")
        shutil.copy(data["paths"][0], folder / "x.bmp")
        args = segment_args(data, out, images=str(folder))
        expect[case] = "same output name 'x.png'"
    elif case == "missing truth":
        truth = tmp_path / "truth"
        shutil.copytree(data["truth"], truth)
        os.remove(truth / "img05.png")
        args += ["--ground-truth", str(truth), "--num-classes", "4"]
        expect[case] = "img05.png: no ground truth 'img05.png'"
    elif case == "no output dir":
        args = args[:-2]
    elif case == "no classes":
        args += ["--ground-truth", data["truth"]]
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        args = segment_args(data, out, images=str(tmp_path / "empty"))
    elif case == "with output":
        args += ["--output", "x.png"]
    elif case == "bad address":
        args += ["--scheduler", "localhost"]
    elif case == "unreachable":
        import crfrnn_np.config
        monkeypatch.setattr(crfrnn_np.config, "DASK_CONNECT_TIMEOUT", 0.5)
        args += ["--scheduler", "tcp://127.0.0.1:%d" % closed_port()]
    elif case == "no dask":
        monkeypatch.setitem(sys.modules, "distributed", None)          # import distributed -> ImportError
        args += ["--scheduler", "tcp://127.0.0.1:8786"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("crfrnn: error:") and expect[case] in err[0], err
    assert not out.exists() or not os.listdir(out)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_only():
    tty = FakeTerminal()
    bar = Progress(total=5, skipped=2, stream=tty, interval=0)
    bar.step()
    bar.note("crfrnn: failed: x.png: cannot read image")
    bar.step()
    bar.close()
    text = tty.getvalue()
    assert "\r3/5 images" in text and "\r4/5 images" in text and "images/s" in text and "left" in text
    assert "\r\033[Kcrfrnn: failed: x.png" in text and text.endswith("\n")
    plain = io.StringIO()
    bar = Progress(total=1, skipped=0, stream=plain, interval=0)
    bar.step()
    bar.close()
    assert plain.getvalue() == ""
