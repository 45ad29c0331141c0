"""The stages' and policies' own sections (curate/presentation.py): their presenters' blocks made ready for
the template (figures drawn, gallery rows' content read from the input shards). Built without knowing any
method: a section is whatever its presenter returns.
"""
from __future__ import annotations

import re
from typing import Any

import markupsafe
import polars as pl

from curate.presentation import Block, Gallery, Histogram, Presenter, Table, num
from curate.report import gallery, plots
from curate.report.view import RunDirectory, presenters

_BOLD = re.compile(r"\*\*(.+?)\*\*")


def sections(view: RunDirectory, taken: set[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """([{id, title, blocks}] in pipeline order, problems); ids that clash with `taken` get a suffix."""
    found, problems = presenters(view)
    out = []
    for presenter, members in found:
        blocks = presenter.section(view, members)
        if blocks:
            out.append({"id": _unique(presenter, taken), "title": presenter.title or presenter.id,
                        "blocks": [_prepare(b, view) for b in blocks]})
    return out, problems


def _unique(presenter: Presenter, taken: set[str]) -> str:
    base = presenter.id or type(presenter).__name__.lower()
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}-{i}"
    taken.add(name)
    return name


def inline(text: str) -> markupsafe.Markup:
    """A Text block's string as HTML: escaped, `**x**` in bold."""
    return markupsafe.Markup(_BOLD.sub(r"<b>\1</b>", str(markupsafe.escape(text))))


def _cell(v: Any) -> dict[str, Any]:
    if isinstance(v, str):
        return {"text": v, "left": True}
    return {"text": num(v), "left": False}


def _prepare(b: Block, view: RunDirectory) -> dict[str, Any]:
    """A block as the template's `block` macro reads it."""
    if isinstance(b, Histogram):
        return {"kind": b.kind, "caption": b.caption, "alt": b.alt or f"histogram of {b.column}",
                "figure": plots.split_histogram(b.column, dict(b.groups), b.edges, list(b.cuts))}
    if isinstance(b, Gallery):
        return {"kind": b.kind, "groups": _gallery(b, view)}
    if isinstance(b, Table):
        return {"kind": b.kind, "header": list(b.header), "empty": b.empty,
                "rows": [[_cell(v) for v in row] for row in b.rows],
                "left": [all(isinstance(r[i], str) for r in b.rows) if b.rows else True for i in range(len(b.header))]}
    out: dict[str, Any] = {"kind": b.kind, **{k: getattr(b, k) for k in b.__dataclass_fields__}}
    if "blocks" in out:
        out["blocks"] = [_prepare(x, view) for x in out["blocks"]]
    if b.kind == "facts":
        out["items"] = [(label, v if isinstance(v, str) else num(v), key) for label, v, key in b.items]
    return out


def _gallery(b: Gallery, view: RunDirectory) -> list[dict[str, Any]]:
    cards = [c for g in b.groups for c in g.cards]
    if not cards:
        return []
    wanted = pl.DataFrame({"shard": [c.shard for c in cards], "row": [int(c.row) for c in cards]}).unique()
    content = {(r["shard"], r["row"]): r for r in gallery.fetch(wanted, view.summary, view.root, prefer=b.prefer)}
    return [{"caption": g.caption, "attrs": dict(g.attrs),
             "cards": [{"id": c.id, "shard": c.shard, "lines": list(c.lines), "highlight": c.highlight,
                        "attrs": dict(c.attrs), **{k: content[(c.shard, int(c.row))][k] for k in ("thumb", "text", "note")}}
                       for c in g.cards]}
            for g in b.groups]
