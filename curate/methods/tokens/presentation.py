"""What the report and the CLI show of a `tokens` stage: tokens in, kept, dropped and errored beside the rows,
for the run and per policy (summary.json's `totals`, which the engine sums from the stage's `totals` outputs;
a row whose count is null counts 0 tokens)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from curate.presentation import Block, Presenter, RunView, Table, Text, num

KINDS = ("in", "kept", "dropped", "errored")


class TotalsPresenter(Presenter):
    id = "tokens"
    title = "Tokens"

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        out: list[Block] = []
        for column in _columns(members):
            rows = [[name, *(entry[k] for k in KINDS), *(entry["totals"][column][k] for k in KINDS)]
                    for name, entry in _entries(run) if column in entry.get("totals", {})]
            if rows:
                out += [Text(f"**{column}**: rows and tokens per policy (a row counts under every policy that "
                             "decided it; the run's kept tokens are those of the rows every policy kept)."),
                        Table(["", "rows in", "kept", "dropped", "errored",
                               "tokens in", "kept", "dropped", "errored"], rows)]
        return out

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        return [f"  {column} {name}: " + ", ".join(f"{k} {num(entry['totals'][column][k])}" for k in KINDS)
                for column in _columns(members)
                for name, entry in _entries(run) if column in entry.get("totals", {})]


def _columns(members: Sequence[Any]) -> list[str]:
    return [stage.column(c) for stage in members for c in stage.totals]


def _entries(run: RunView) -> list[tuple[str, dict]]:
    """("run", the result) then (policy name, its counts), in pipeline order."""
    return [("run", run.summary["result"]), *((f"policy {n}", p) for n, p in run.summary["policies"].items())]
