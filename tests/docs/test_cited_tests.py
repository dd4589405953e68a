"""Every test file that the sources, the README or the docs cite exists (a file moved or split must take its
citations along)."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
FOLDERS = ("crfrnn_np", "layers", "fused", "lattice", "proto", "tools", "models", "docs", "bench", "tests")


def test_cited_test_files_exist():
    texts = [ROOT / "README.md"] + [p for folder in FOLDERS for p in (ROOT / folder).rglob("*")
                                     if p.suffix in (".py", ".md")]
    cited = {}
    for path in texts:
        for name in re.findall(r"\btests/[\w/]+\.py\b", path.read_text(encoding="utf-8")):
            cited.setdefault(name, path.relative_to(ROOT))
    assert len(cited) >= 5
    missing = ["%s (cited in %s)" % (name, where) for name, where in sorted(cited.items())
               if not (ROOT / name).is_file()]
    assert not missing, missing
