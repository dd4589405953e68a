"""docs/walkthrough.md: its ``python`` blocks run, in order, in one namespace, from the project root; the
pictures it shows and the files it links to exist; its in-page links name real headings."""
import pathlib
import re
import subprocess
import traceback

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
WALKTHROUGH = DOCS / "walkthrough.md"

IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def fenced_blocks(text):
    """``[(language, first line number of the body, body)]`` of the fenced blocks, in order.

    Raises
    ------
    ValueError
        When a fence is never closed.
    """
    blocks, language, start, body = [], None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        if language is None:
            if line.startswith("```"):
                language, start, body = line[3:].strip(), number + 1, []
        elif line.rstrip() == "```":
            blocks.append((language, start, "\n".join(body) + "\n"))
            language = None
        else:
            body.append(line)
    if language is not None:
        raise ValueError("the %s block opened at line %d is never closed" % (language or "plain", start - 1))
    return blocks


def python_blocks():
    return [(start, body) for language, start, body in fenced_blocks(WALKTHROUGH.read_text()) if language == "python"]


def prose():
    """The markdown outside the fenced blocks (links inside code are not links)."""
    return re.sub(r"^```.*?^```[ \t]*$", "", WALKTHROUGH.read_text(), flags=re.S | re.M)


def github_anchor(heading):
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def repository_state():
    """``git status --porcelain`` of the worktree (ignored files such as out/ are not listed), or None."""
    try:
        done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return set(done.stdout.splitlines()) if done.returncode == 0 else None


def test_blocks_are_closed_and_there_are_python_blocks():
    assert len(python_blocks()) >= 10
    assert "@@" not in WALKTHROUGH.read_text(), "an output placeholder was left in the text"


@pytest.mark.slow
def test_python_blocks_run_in_order(monkeypatch):
    monkeypatch.chdir(ROOT)
    before = repository_state()
    namespace = {"__name__": "walkthrough"}
    for index, (start, body) in enumerate(python_blocks(), start=1):
        # padded so that a traceback's line numbers are the markdown's
        code = compile("\n" * (start - 1) + body, str(WALKTHROUGH), "exec")
        try:
            exec(code, namespace)
        except Exception as exc:                                     # noqa: BLE001 (report any failure)
            first = body.strip().splitlines()[0] if body.strip() else ""
            pytest.fail("python block %d (docs/walkthrough.md line %d, `%s`) raised %s: %s\n%s"
                        % (index, start, first, type(exc).__name__, exc, traceback.format_exc()), pytrace=False)
    after = repository_state()
    if before is not None and after is not None:
        assert after <= before, "the blocks wrote into the repository: %s" % sorted(after - before)


def test_pictures_exist():
    images = IMAGE.findall(WALKTHROUGH.read_text())
    assert images, "the walkthrough shows no pictures"
    for target in images:
        path = (DOCS / target).resolve()
        assert DOCS in path.parents, "%s is not under docs/" % target
        assert path.is_file(), "missing picture %s" % target
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % target


def test_relative_links_exist():
    links = [target for target in LINK.findall(prose()) if not re.match(r"[a-z]+:", target)]
    files = [target for target in links if not target.startswith("#")]
    assert any(target.startswith("../layers/") for target in files)
    for target in files:
        path = (DOCS / target.split("#")[0]).resolve()
        assert ROOT in path.parents, "%s points outside the project" % target
        assert path.exists(), "broken link %s" % target
    anchors = {github_anchor(line.lstrip("#")) for line in prose().splitlines() if line.startswith("#")}
    for target in links:
        if target.startswith("#"):
            assert target[1:] in anchors, "no heading for the in-page link %s" % target
