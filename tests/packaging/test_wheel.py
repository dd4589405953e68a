"""The package as a user installs it: a wheel with its nets and demo data, working from any folder.

Builds the wheel from this checkout, installs it (without dependencies) into a fresh virtual environment
whose only other packages are the dependencies of the test environment (numpy, numba, ... through a ``.pth``
line: a path entry, so the test environment's editable ``crfrnn_np`` stays invisible), and runs ``crfrnn demo``
and a shipped net by name from an empty folder outside the source tree.
"""
import os
import pathlib
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_runs_the_demo_outside_the_tree(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    wheel = next(wheels.glob("crfrnn_np-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("crfrnn_np/models/crfrnn_deploy.prototxt", "crfrnn_np/models/demo.prototxt",
                    "crfrnn_np/models/demo/image.png", "crfrnn_np/models/demo/mask.png",
                    "crfrnn_np/models/demo/coarse_unary.npy", "crfrnn_np/fused/meanfield.py"):
        assert shipped in names, shipped
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    pathlib.Path(site, "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"))
    where = subprocess.run([str(python), "-c", "import crfrnn_np; print(crfrnn_np.__file__)"], cwd=elsewhere,
                           env=env, check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(venv)), where                        # the installed copy, not the checkout
    demo = subprocess.run([str(venv / "bin" / "crfrnn"), "demo"], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "mean IoU, CRF-RNN result:                0.9999" in demo.stdout
    assert (elsewhere / "out" / "demo_panel.png").stat().st_size > 1000
    unroll = subprocess.run([str(venv / "bin" / "crfrnn"), "unroll", "crfrnn_deploy"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=600)
    assert unroll.returncode == 0 and "inference1_iter10_unary_add" in unroll.stdout, unroll.stderr
