"""The tests mirror the sources: every module of the package folders (pyproject's package-dir) has
``tests/<folder>/test_<module>.py``; a package's ``__init__.py`` maps to ``test_<folder>.py``, and an
``__init__.py`` with nothing but a docstring and imports needs none."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: source -> the test module that stands for the mirrored one, where the mirrored name is not (yet) used
OTHER_NAMES = {"lattice/cuda.py": "tests/lattice/test_lattice_cuda.py"}


def source_folders():
    text = (ROOT / "pyproject.toml").read_text()
    block = text.split("[tool.setuptools.package-dir]", 1)[1].split("\n[", 1)[0]
    folders = re.findall(r'^"[\w.]+" = "([\w/]+)"$', block, re.M)
    return [f for f in folders if "/" not in f]          # models/demo holds data only


def only_docstring_and_imports(path):
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, (ast.Import, ast.ImportFrom)) or
               (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def test_every_source_module_has_its_test_module():
    folders = source_folders()
    assert {"crfrnn_np", "layers", "lattice", "proto", "tools", "models", "fused"} <= set(folders)
    missing = []
    for folder in folders:
        for path in sorted((ROOT / folder).glob("*.py")):
            stem = folder if path.stem == "__init__" else path.stem
            if path.stem == "__init__" and only_docstring_and_imports(path):
                continue
            wanted = "tests/%s/test_%s.py" % (folder, stem)
            other = OTHER_NAMES.get("%s/%s" % (folder, path.name))
            if not (ROOT / wanted).is_file() and not (other and (ROOT / other).is_file()):
                missing.append(wanted)
    assert not missing, missing
