"""The stages' and policies' own sections (curate/presentation.py): their presenters' blocks made ready for
the template (figures drawn, gallery rows' content read from the input shards). Built without knowing any
method: a section is whatever its presenter returns.
"""
from __future__ import annotations

import difflib
import re
from typing import Any

import markupsafe
import polars as pl

from curate.presentation import Block, Card, Gallery, Histogram, LineChart, Presenter, Scatter, Table, num
from curate.report import gallery, plots
from curate.report.view import RunDirectory, presenters

_BOLD = re.compile(r"\*\*(.+?)\*\*")


def sections(view: RunDirectory, taken: set[str], found: tuple[list[tuple[Presenter, list[Any]]], list[str]] | None = None
             ) -> tuple[list[dict[str, Any]], list[str]]:
    """([{id, title, blocks}] in pipeline order, problems); ids that clash with `taken` get a suffix. `found`: the
    run's presenters, if already looked up (`view.presenters`)."""
    found, problems = found if found is not None else presenters(view)
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


def prepare(b: Block) -> dict[str, Any]:
    """A block that shows no rows of the run (no gallery) as the template's `block` macro reads it."""
    if isinstance(b, Gallery):
        raise TypeError("a gallery needs the run: use sections()")
    return _prepare(b, None)


def _prepare(b: Block, view: RunDirectory | None) -> dict[str, Any]:
    """A block as the template's `block` macro reads it."""
    if isinstance(b, Histogram):
        return {"kind": b.kind, "caption": b.caption, "alt": b.alt or f"histogram of {b.column}",
                "figure": plots.split_histogram(b.column, dict(b.groups), b.edges, list(b.cuts))}
    if isinstance(b, LineChart):
        return {"kind": b.kind, "caption": b.caption, "alt": b.alt or b.title,
                "figure": plots.line_chart(b.title, b.x_label, b.y_label, dict(b.series), list(b.cuts))}
    if isinstance(b, Scatter):
        return {"kind": b.kind, "caption": b.caption, "alt": b.alt or b.title,
                "figure": plots.scatter(b.title, b.x_label, b.y_label, dict(b.groups), list(b.x_cuts),
                                        list(b.y_cuts), b.log)}
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
    out = []
    for g in b.groups:
        shown = [{"id": c.id, "shard": c.shard, "lines": list(c.lines), "highlight": c.highlight, "attrs": dict(c.attrs),
                  "segments": None,
                  **{k: content[(c.shard, int(c.row))][k] for k in ("thumb", "text", "note")}} for c in g.cards]
        _mark_differences(g.cards, shown)
        out.append({"caption": g.caption, "attrs": dict(g.attrs), "cards": shown})
    return out


def _mark_differences(cards: list[Card], shown: list[dict[str, Any]]) -> None:
    """For each card that names another to compare with: its text as segments (text, marked), the words the
    other text lacks (a word-level diff) marked."""
    text_of = {c.id: s["text"] for c, s in zip(cards, shown)}
    for c, s in zip(cards, shown):
        other = text_of.get(c.compare_with) if c.compare_with else None
        if s["text"] is not None and other is not None:
            s["segments"] = word_diff(s["text"], other)


def word_diff(text: str, other: str) -> list[tuple[str, bool]]:
    """`text` as (piece, marked) segments: marked where its words are not matched in `other` (white space
    kept as it is, runs of marked or unmarked words merged)."""
    pieces = re.findall(r"\S+|\s+", text)
    words = [i for i, p in enumerate(pieces) if not p.isspace()]
    theirs = other.split()
    matcher = difflib.SequenceMatcher(None, [pieces[i] for i in words], theirs, autojunk=False)
    marked = [True] * len(pieces)
    for a, _, size in matcher.get_matching_blocks():
        for k in range(a, a + size):
            marked[words[k]] = False
    for i, p in enumerate(pieces):  # white space takes the mark of the words on both sides
        if p.isspace():
            marked[i] = 0 < i < len(pieces) - 1 and marked[i - 1] and marked[i + 1]
    out: list[tuple[str, bool]] = []
    for p, m in zip(pieces, marked):
        if out and out[-1][1] == m:
            out[-1] = (out[-1][0] + p, m)
        else:
            out.append((p, m))
    return out
