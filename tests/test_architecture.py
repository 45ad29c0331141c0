"""The layers hold: no import cycle, the import contracts pass, the registry and its reference agree."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

import curate
from curate import registry
from curate.reference import reference, reference_file

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_cycle_inside_the_project():
    graph = grimp.build_graph("curate", "flows", "kernels")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                cycles.append((module, *chain))
    assert cycles == []


def test_import_contracts_are_kept():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in out.stdout


def test_every_registered_type_names_its_class():
    for kind, table in (("stage", registry.STAGES), ("policy", registry.POLICIES)):
        for name, cls in registry.types(kind).items():
            assert cls.type == name, f"{table[name]} has type {cls.type!r}"


def test_docs_reference_is_what_curate_stages_prints(capsys):
    from curate.cli import main

    assert main(["stages"]) == 0
    printed = capsys.readouterr().out
    assert printed == reference()
    assert not printed.startswith(("Generated", "<!--")) and "do not edit" not in printed  # (a user reads it)
    assert (ROOT / "docs" / "reference.md").read_text() == reference_file(), \
        "docs/reference.md is stale: run `python -m curate.reference`"


def test_no_function_in_curate_is_over_60_lines():
    """A function over ~60 lines usually holds two ideas (STYLE.md): keep them split."""
    import ast

    long = []
    for path in (ROOT / "curate").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 >= 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert long == []


def test_every_reference_entry_describes_its_own_type_in_full():
    """`curate stages` shows each type's own description (not its base class's: embed, dbp and sens had
    none of their own), whole (not cut at a line break mid-sentence: semdedup's), and sends the reader to
    nothing a user lacks (the module docstring, specs/)."""
    from curate.reference import description

    text = reference()
    bases = {description(b) for b in (curate.Stage, curate.Policy)} - {""}
    for kind in ("stage", "policy"):
        for name, cls in registry.types(kind).items():
            d = description(cls)
            assert d and d not in bases, f"{kind} {name} has no description of its own"
            assert d.endswith((".", ")")), f"{kind} {name}: description cut short: {d!r}"
            assert f"\n\n{d}\n" in text
    for forbidden in ("module docstring", "specs/", "Base class", "Base of the stages"):
        assert forbidden not in text, forbidden
