"""What the report and the CLI show of the `pii` stage: per kind, the finds and the rows with one, and the rows
its policy dropped. Counts only: the report shows no row's text here, since a card would show the original
(unredacted) text from the input shard."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow.compute as pc

from curate.presentation import OUTCOME, Block, Part, Presenter, RunView, Table, Text, num


def numbers(run: RunView, stage: Any) -> dict[str, Any]:
    """Finds and rows with a find per kind, rows scored, and rows dropped by the policy on `finds`, in one pass."""
    kinds = [k for k in stage.outputs if k not in ("text", "error", "finds")]
    policy = next(iter(run.policies_reading(stage.column("finds"))), None)
    finds, rows = dict.fromkeys(kinds, 0), dict.fromkeys(kinds, 0)
    scored = dropped = 0
    for part in run.manifest([*(stage.column(k) for k in kinds), stage.column("finds"), OUTCOME]):
        for k in kinds:
            v = part.column(stage.column(k)).to_numpy(zero_copy_only=False)
            v = np.nan_to_num(np.asarray(v, np.float64))
            finds[k] += int(v.sum())
            rows[k] += int((v > 0).sum())
        scored += part.num_rows - part.column(stage.column("finds")).null_count
        if policy:
            dropped += int(pc.sum(pc.equal(part.column(OUTCOME), f"dropped: {policy}")).as_py() or 0)
    return {"finds": finds, "rows": rows, "scored": scored, "policy": policy, "dropped": dropped}


class PIIPresenter(Presenter):
    id = "pii"
    title = "Personal data and secrets"

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        parts: list[Block] = []
        for stage in members:
            d = numbers(run, stage)
            table = Table(["kind", "finds", "rows with one", "share of rows"],
                          [[k, d["finds"][k], d["rows"][k], f"{d['rows'][k] / max(d['scored'], 1):.2%}"]
                           for k in d["finds"]])
            said = (f"Policy **{d['policy']}** dropped {num(d['dropped'])} rows; the others are exported with "
                    "their finds replaced by placeholders." if d["policy"] else
                    "No policy reads this stage; exported rows have their finds replaced by placeholders.")
            parts.append(Part([Text(f"Stage **{stage.name}**: {num(d['scored'])} rows scored. {said}"), table,
                               Text("No row's text is shown here: the input holds the unredacted text.", "muted")],
                              {"stage": stage.name}))
        return parts

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        out = []
        for stage in members:
            d = numbers(run, stage)
            found = ", ".join(f"{k} {num(d['finds'][k])} in {num(d['rows'][k])} rows" for k in d["finds"]
                              if d["finds"][k])
            out.append(f"{stage.name}: {found or 'nothing found'}"
                       + (f"; {d['policy']} dropped {num(d['dropped'])} rows" if d["policy"] else ""))
        return out
