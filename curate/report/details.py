"""Summary details (a stage's parameters and fitted artifact, a policy's facts) as tables, not JSON.

Whatever shape a stage's `describe()` returns is shown without knowing the method: plain values in one
two-column table, a mapping of plain values as its own table, a mapping of mappings (a sweep: epsilon ->
kept, removed) and a list of mappings (a per-cluster table) as one table with a column per key, anything
deeper under a heading. Long tables are cut to their first rows with a count of the rest.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curate.presentation import Block, Heading, Table, Text, num

LIST_ITEMS = 40     # rows of a long table shown (e.g. a per-cluster table)


def _plain(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _value(v: Any) -> Any:
    """A table cell: numbers stay numbers (the report formats them), the rest becomes short text."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float, str)):
        return v
    if isinstance(v, (list, tuple)) and all(_plain(x) for x in v):
        shown = ", ".join(x if isinstance(x, str) else num(x) for x in v[:LIST_ITEMS])
        return shown + (f", … {len(v) - LIST_ITEMS} more" if len(v) > LIST_ITEMS else "") if v else "(none)"
    return str(v)


def _cut(rows: list[list[Any]], what: str) -> tuple[list[list[Any]], list[Block]]:
    if len(rows) <= LIST_ITEMS:
        return rows, []
    return rows[:LIST_ITEMS], [Text(f"{num(len(rows) - LIST_ITEMS)} more {what} not shown.", "muted")]


def _records(name: str, header0: str, keys: list[Any], records: list[Mapping[str, Any]]) -> list[Block]:
    """One table: a row per record, a column per key found in any record."""
    cols = list(dict.fromkeys(k for r in records for k in r))
    if not header0:
        cols.sort(key=lambda c: not _index(records, c))  # a list's column counting 0, 1, 2, ... (an index) first
    rows = [[*([str(k)] if header0 else []), *[_value(r.get(c)) for c in cols]] for k, r in zip(keys, records)]
    rows, more = _cut(rows, "rows")
    return [Heading(name), Table([*([header0] if header0 else []), *map(str, cols)], rows), *more]


def _index(records: list[Mapping[str, Any]], col: Any) -> bool:
    """Whether `col` numbers the records: consecutive integers."""
    v = [r.get(col) for r in records]
    return all(isinstance(x, int) and not isinstance(x, bool) for x in v) and all(b == a + 1 for a, b in zip(v, v[1:]))


def _is_records(v: Any) -> bool:
    return bool(v) and all(isinstance(x, Mapping) and all(_plain(y) or isinstance(y, (list, tuple)) for y in x.values())
                           for x in v)


def as_blocks(value: Mapping[str, Any], title: str = "") -> list[Block]:
    """Tables for a summary entry's details (a mapping)."""
    scalars = [[str(k), _value(v)] for k, v in value.items()
               if _plain(v) or (isinstance(v, (list, tuple)) and all(_plain(x) for x in v))]
    out: list[Block] = []
    if scalars:
        out += [*([Heading(title)] if title else []), Table(["setting", "value"], scalars)]
    for k, v in value.items():
        if isinstance(v, Mapping) and v and all(_plain(x) for x in v.values()):
            out += [Heading(str(k)), Table(["key", "value"], [[str(a), _value(b)] for a, b in v.items()])]
        elif isinstance(v, Mapping) and _is_records(list(v.values())):
            out += _records(str(k), "key", list(v), list(v.values()))
        elif isinstance(v, (list, tuple)) and _is_records(v):
            out += _records(str(k), "", list(range(len(v))), list(v))
        elif isinstance(v, Mapping) and v:
            out += as_blocks(v, str(k))
        elif isinstance(v, (list, tuple)) and not all(_plain(x) for x in v):
            out += [Heading(str(k)), Table(["item"], [[_value(x)] for x in v[:LIST_ITEMS]])]
    return out
