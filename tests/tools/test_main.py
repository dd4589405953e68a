"""The command line's engine verbs (`time`, `gradcheck`) and its error contract: one line, non-zero exit."""
import pathlib
import subprocess
import sys

import pytest

from crfrnn_np.tools.main import main

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, needle", [
    ('layer { name: "a" type: "Input" top: "x" input_param { shape { dim: 1 } } }\nlayer { nme: "b" }', ":2:"),
    ('layer { name: "a" type: "Input" top: "x" input_param { shape { dim: 1 } } ', ":1:"),
])
def test_errors_are_one_line_without_traceback(tmp_path, text, needle):
    p = tmp_path / "bad.prototxt"
    p.write_text(text)
    r = subprocess.run([sys.executable, "-m", "crfrnn_np.tools.main", "time", "--model", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crfrnn: error:") and needle in lines[0], r.stderr


def test_missing_model_file(tmp_path, capsys):
    assert main(["time", "--model", str(tmp_path / "none.prototxt")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_a_verb_that_fails_to_import_is_an_error(monkeypatch, capsys):
    """A broken verb module stops the command line with one line naming it, instead of vanishing from the help."""
    import importlib
    real = importlib.import_module

    def broken(name, *args, **kwargs):
        if name == "crfrnn_np.tools.trace":
            raise ImportError("No module named 'h5py_missing'", name="h5py_missing")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(importlib, "import_module", broken)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the 'trace' command cannot be loaded" in err[0] and "h5py_missing" in err[0]
