"""How a stage or policy presents itself: its section of the report and its lines after `curate run`.

A stage or policy class names a `Presenter` (`presenter = MyPresenter()`); the report and the CLI find it
from summary.json, so they hold no method's column, parameter or artifact names. A presenter gets a
read-only `RunView` of the run directory and its members (the run's stages or policies that name it,
rebuilt from their parameters) and returns plain data: building blocks (text, tables, histograms,
galleries of rows) that the report renders, and lines of text that the CLI prints. A method never sees
HTML, the report package or the engine.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import pyarrow as pa

# Columns a RunView's `manifest()` provides besides the manifest's own: each row's index in its shard
# (as `Card.row` wants it) and its outcome: `kept`, `dropped: <first policy that dropped it>` or
# `errored: <first stage that could not score it>`.
ID = "id"
SHARD = "shard"
ROW = "_view.row"
OUTCOME = "_view.outcome"


class RunView(Protocol):
    """A finished run, read-only: what a presenter may read."""

    summary: Mapping[str, Any]   # summary.json
    seed: int                    # choose sampled rows from this seed (the report's `--seed`)

    def manifest(self, columns: Sequence[str]) -> Iterator[pa.Table]:
        """The manifest one part (one input shard) at a time, only `columns` (which may include ROW and OUTCOME)."""
        ...

    def outcomes(self) -> Mapping[str, int]:
        """Rows per outcome (a row counts under the first policy that dropped it)."""
        ...

    def policies_reading(self, column: str) -> list[str]:
        """The run's policies that decide on `column`, in pipeline order."""
        ...

    def input_schema(self) -> pa.Schema:
        """The input shards' columns (raises CurateError or OSError when the input cannot be read here)."""
        ...

    def stage_inputs(self, name: str) -> tuple[str, ...]:
        """The columns a stage of the run read (summary.json's `inputs`; empty for an older run whose stage cannot
        be rebuilt here)."""
        ...

    def input_rows(self, shard: str, rows: Sequence[int], columns: Sequence[str]) -> pa.Table:
        """Rows of an input shard by their index in it, only `columns` (raises CurateError or OSError when the
        input cannot be read here)."""
        ...


# --- building blocks: plain data the report renders ---------------------------------------------------
# In `Text`, `**x**` is shown in bold; nothing else is markup (every string is escaped).

@dataclass(frozen=True)
class Heading:
    text: str
    kind: ClassVar[str] = "heading"


@dataclass(frozen=True)
class Text:
    text: str
    style: Literal["", "muted", "warning"] = ""
    kind: ClassVar[str] = "text"


@dataclass(frozen=True)
class Table:
    """Rows of cells: text is left-aligned, numbers right-aligned and formatted; `empty` replaces no rows."""

    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    empty: str = ""
    kind: ClassVar[str] = "table"


@dataclass(frozen=True)
class Facts:
    """Labelled values, one per line: (label, value, key); the key marks the value (`data-k`) for tests."""

    items: Sequence[tuple[str, Any, str]]
    kind: ClassVar[str] = "facts"


@dataclass(frozen=True)
class Histogram:
    """Row counts per bin (`edges` has one more entry than each count array), one line per group of rows,
    with `cuts` (label, name, value) drawn as dashed lines."""

    column: str
    groups: Mapping[str, np.ndarray]
    edges: np.ndarray
    cuts: Sequence[tuple[str, str, float]] = ()
    caption: str = ""
    alt: str = ""
    kind: ClassVar[str] = "histogram"


@dataclass(frozen=True)
class LineChart:
    """Curves y(x), one per label (each an (xs, ys) pair), with `cuts` (label, name, value) drawn as dashed
    vertical lines, as in Histogram."""

    title: str
    x_label: str
    y_label: str
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]]
    cuts: Sequence[tuple[str, str, float]] = ()
    caption: str = ""
    alt: str = ""
    kind: ClassVar[str] = "line_chart"


@dataclass(frozen=True)
class Scatter:
    """Points (x, y), one colour per group of rows (each an (xs, ys) pair), with `x_cuts` and `y_cuts` (label, value)
    drawn as dashed vertical and horizontal lines; `log` puts both axes on a log scale."""

    title: str
    x_label: str
    y_label: str
    groups: Mapping[str, tuple[Sequence[float], Sequence[float]]]
    x_cuts: Sequence[tuple[str, float]] = ()
    y_cuts: Sequence[tuple[str, float]] = ()
    log: bool = False
    caption: str = ""
    alt: str = ""
    kind: ClassVar[str] = "scatter"


@dataclass(frozen=True)
class Card:
    """One row of the run, shown with its content (image or text, read from its input shard by the report)."""

    shard: str
    row: int
    id: str
    lines: Sequence[str] = ()
    highlight: bool = False
    attrs: Mapping[str, Any] = field(default_factory=dict)
    compare_with: str | None = None  # the id of another card of its group: words of this text not in that
    #                                  one's, in a word-level diff, are marked


@dataclass(frozen=True)
class CardGroup:
    caption: str
    cards: Sequence[Card]
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Gallery:
    """Groups of rows side by side; `prefer`: the input column to show (else the report's choice)."""

    groups: Sequence[CardGroup]
    prefer: str | None = None
    kind: ClassVar[str] = "gallery"


@dataclass(frozen=True)
class Details:
    """Blocks shown folded, under a one-line summary."""

    summary: str
    blocks: Sequence[Block]
    kind: ClassVar[str] = "details"


@dataclass(frozen=True)
class Part:
    """Blocks that belong together (one stage's part of a section); `attrs` mark it (`data-<key>`) for tests."""

    blocks: Sequence[Block]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "part"


Block = Heading | Text | Table | Facts | Histogram | LineChart | Scatter | Gallery | Details | Part


class Presenter:
    """What the report and the CLI show of the stages (or policies) that name this presenter.

    One presenter object may serve several classes (the dedup stages share one): it is called once per
    run with all of them, in pipeline order. `id` is the report section's anchor, `title` its heading.
    """

    id: str = ""
    title: str = ""

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        """The report section's content (none: no section)."""
        return []

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        """Lines printed after a run (`curate run`, `curate join`, `curate summary`)."""
        return []

    def reason(self, member: Any, pattern: str) -> str:
        """One of its policies' drop reasons in plain words: `pattern` is the manifest's `drop_reason` with its
        numbers replaced by `#` (default: shown as it is). Reasons that read the same are counted together."""
        return pattern


def class_path(obj: Any) -> str:
    """`module:QualifiedName` of an object's class, as summary.json records it for the report to find."""
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def num(v: Any) -> str:
    """A number as the report shows it: whole numbers and values from 1,000 up thousands separated with no
    exponent (`80,010`), smaller ones to 4 significant digits (`12.35`), `–` for none or NaN."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–" if math.isnan(v) else ("∞" if v > 0 else "-∞")
        if abs(float(f"{v:.4g}")) >= 1000:  # a rate or a count: whole units, thousands separated (never 8.001e+04)
            return f"{v:,.0f}"
        return f"{v:.4g}" if v == 0 or abs(v) >= 1e-4 else f"{v:.2e}"  # 4 significant digits
    return str(v)
