"""The layers hold: no import cycle, the import contracts pass, the registry and its reference agree."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

from curate import registry
from curate.reference import reference

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
    assert (ROOT / "docs" / "reference.md").read_text() == printed, \
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
