"""The docs cite only what the repository holds: no file points at the shared method specs (readers of the
code do not have them; docs/methods/ holds what they need), and the method notes' links, files and tests
exist."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ROOT / "docs" / "methods"
SCANNED = ("curate", "flows", "kernels", "tests", "bench", "testkit", "docs", "configs")
TEXT = {".py", ".md", ".yaml", ".yml", ".toml", ".json", ".txt", ".sh", ".cfg", ".html", ".j2"}
SKIPPED = {ROOT / "bench" / "data"}  # benchmark data sets, not prose

SPEC_CITATION = re.compile(r"(?<![\w/.-])specs/\w")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
REPO_PATH = re.compile(r"`((?:curate|tests|bench|testkit|kernels|flows|configs|docs)/[\w./-]+)(?:::(\w+))?`")
SHORT_TEST = re.compile(r"`(test_\w+\.py)::(\w+)`")
TEST_NAME = re.compile(r"`(test_\w+)`")


def text_files():
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            parts = path.relative_to(ROOT).parts
            if (path.is_file() and path.suffix in TEXT and not any(p.startswith(".") or p == "__pycache__" for p in parts)
                    and not any(s in path.parents for s in SKIPPED)):
                yield path
    yield from (p for p in (ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml") if p.exists())


def test_no_file_cites_the_shared_specs():
    found = []
    for path in text_files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if SPEC_CITATION.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not found, "cite docs/methods/<method>.md, not the shared specs:\n" + "\n".join(found)


def test_the_index_links_every_method_note_and_each_link_exists():
    index = (METHODS / "README.md").read_text()
    linked = {(METHODS / link.split("#")[0]).resolve() for link in MD_LINK.findall(index) if not link.startswith("http")}
    missing = sorted(str(p.relative_to(ROOT)) for p in linked if not p.exists())
    assert not missing, f"docs/methods/README.md links files that do not exist: {missing}"
    notes = {p.resolve() for p in METHODS.glob("*.md") if p.name != "README.md"}
    assert notes, "docs/methods/ holds no method note"
    assert not notes - linked, f"not in the index: {sorted(p.name for p in notes - linked)}"


def _defines(path: Path, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def {name}\b", path.read_text(), re.M) is not None


def test_method_notes_cite_files_and_tests_that_exist():
    tests_by_file = {p.name: p for p in (ROOT / "tests").rglob("test_*.py")}
    all_tests = {m for p in tests_by_file.values() for m in re.findall(r"^\s*def (test_\w+)", p.read_text(), re.M)}
    problems = []
    for note in sorted(METHODS.glob("*.md")):
        text = note.read_text()
        for link in MD_LINK.findall(text):
            if not link.startswith("http") and not (note.parent / link.split("#")[0]).exists():
                problems.append(f"{note.name}: link {link}")
        for path, name in REPO_PATH.findall(text):
            file = ROOT / path
            if not file.exists():
                problems.append(f"{note.name}: {path} does not exist")
            elif name and not _defines(file, name):
                problems.append(f"{note.name}: {path} defines no {name}")
        for file, name in SHORT_TEST.findall(text):
            if file not in tests_by_file or not _defines(tests_by_file[file], name):
                problems.append(f"{note.name}: no test {file}::{name}")
        problems += [f"{note.name}: no test named {t}" for t in TEST_NAME.findall(text) if t not in all_tests]
    assert not problems, "\n".join(problems)
