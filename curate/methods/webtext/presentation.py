"""What the report and the CLI show of the web-text rule policies (`gopher_quality`, `gopher_repetition`, `c4`,
`fineweb`): per policy, how many rows each rule dropped (the first rule a row breaks names it, as in its drop
reason; a row may break several), and the rows nearest to each threshold on both sides, with their text, so
a user can judge where the line falls; after a run, the rules that dropped most.

Read from the manifest (the policy's statistic columns, streamed part by part; rules are re-applied from the
policy's parameters) and the input shards (the text of the rows shown).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.presentation import (
    ID,
    ROW,
    SHARD,
    Block,
    Card,
    CardGroup,
    Details,
    Gallery,
    Heading,
    Presenter,
    RunView,
    Table,
    Text,
    num,
)

NEAREST = 3   # rows shown on each side of each threshold
TOP_LINES = 3  # rules named per policy after a run


class RulesPresenter(Presenter):
    id = "rules"
    title = "Quality rules"

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        out: list[Block] = [Text("Per policy: the rows each rule dropped (a row counts under the first rule it "
                                 "breaks, as its drop reason says, and under every rule it breaks), and the rows "
                                 "nearest to each threshold, just dropped and just kept by that rule.")]
        for policy in members:
            out += _blocks(policy, _scan(run, policy))
        return out

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        out = []
        for policy in members:
            scan = _scan(run, policy, nearest=0)
            top = sorted(((n, label) for label, n in zip(scan.labels, scan.first) if n), reverse=True)[:TOP_LINES]
            if top:
                out.append(f"  policy {policy.name} drops most by: " + ", ".join(f"{label} {num(int(n))}" for n, label in top))
        return out


@dataclass
class _Scan:
    labels: list[str]
    first: np.ndarray            # rows dropped by each rule first
    broken: np.ndarray           # rows breaking each rule
    decided: int = 0
    near: dict[tuple[int, str], list[tuple]] = field(default_factory=dict)  # (rule, side) -> (distance, card data)


def _label(rule: Any) -> str:
    return f"{rule.label} {rule.op} {rule.bound:g}" if rule.op else rule.label


def _scan(run: RunView, policy: Any, nearest: int = NEAREST) -> _Scan:
    rules = policy.active_rules()
    scan = _Scan([_label(r) for r in rules], np.zeros(len(rules), np.int64), np.zeros(len(rules), np.int64))
    columns = list(dict.fromkeys([*(r.column for r in rules), f"keep.{policy.name}", ID, SHARD, ROW]))
    for part in run.manifest(columns):
        part = part.filter(pc.is_valid(part.column(f"keep.{policy.name}")))  # rows the policy decided
        scan.decided += part.num_rows
        values = {c: np.asarray(part.column(c).to_numpy(zero_copy_only=False)) for c in columns[:-4]}
        first = np.full(part.num_rows, -1)
        for k in reversed(range(len(rules))):
            fails = rules[k].fails(values[rules[k].column])
            first[fails] = k
            scan.broken[k] += int(fails.sum())
            if nearest and rules[k].op:
                _nearest(scan, k, part, values[rules[k].column], fails, rules[k].bound, nearest)
        scan.first += np.bincount(first[first >= 0], minlength=len(rules))[:len(rules)]
    return scan


def _nearest(scan: _Scan, k: int, part: pa.Table, v: np.ndarray, fails: np.ndarray, bound: float, n: int) -> None:
    distance = np.abs(v.astype(np.float64) - bound)
    for side, mask in (("dropped", fails), ("kept", ~fails)):
        idx = np.flatnonzero(mask)
        pick = idx[np.argsort(distance[idx], kind="stable")[:n]]
        best = scan.near.setdefault((k, side), [])
        best += [(float(distance[j]), part.column(SHARD)[j].as_py(), int(part.column(ROW)[j].as_py()),
                  part.column(ID)[j].as_py(), float(v[j])) for j in pick]
        best.sort(key=lambda x: x[0])
        del best[n:]


def _blocks(policy: Any, scan: _Scan) -> list[Block]:
    rows = [[label, num(int(f)), num(int(b))] for label, f, b in zip(scan.labels, scan.first, scan.broken)]
    out: list[Block] = [Heading(f"{policy.name} ({policy.type})"),
                        Table(["rule (drops a row when)", "dropped first by it", "rows breaking it"], rows,
                              empty="no rule is on"),
                        Text(f"{num(scan.decided)} rows decided; {num(int(scan.first.sum()))} dropped.", "muted")]
    groups = []
    for k, label in enumerate(scan.labels):
        for side in ("dropped", "kept"):
            near = scan.near.get((k, side), [])
            if near:
                groups.append(CardGroup(f"{label}: just {side}", [
                    Card(shard, row, id_, lines=[f"value {num(value)}"], highlight=side == "dropped")
                    for _, shard, row, id_, value in near]))
    if groups:
        out.append(Details(f"{policy.name}: the rows nearest to each threshold", [Gallery(groups)]))
    return out
