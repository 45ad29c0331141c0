""""Where the rows went": the run told in plain sentences at the top of the report.

Every policy decides on every row it can read (its stage scored it), not only on the rows earlier policies
kept: the engine ANDs their decisions. So a policy that keeps a fraction keeps that fraction of all the rows
it ranks, and what it removes from the rows still in after the earlier policies can be a quite different
share. The story follows the rows in pipeline order: each policy's cut on what reached it (the rows it
drops first, `dropped: <policy>` outcomes), beside its own decision over all rows when the two differ.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curate.presentation import num


def pct(a: int | float, b: int | float) -> str:
    """`a` as a whole percentage of `b` (one decimal under 1% and over 99%, so a few rows do not read as 0%)."""
    if not b:
        return "–"
    p = 100.0 * a / b
    if 0 < p < 0.1:
        return "<0.1%"
    return f"{p:.1f}%" if (0 < p < 1 or 99 < p < 100) else f"{p:.0f}%"


def where_rows_went(summary: Mapping[str, Any], outcomes: Mapping[str, int]) -> list[str]:
    """The sentences (`**x**` bold): rows in, errors, each policy in pipeline order, rows kept; then how a row
    dropped by several policies is counted. `summary["policies"]` must be in pipeline order."""
    r = summary["result"]
    total = int(r["in"])
    out = [f"**{num(total)}** rows came in."]
    errored = {k.removeprefix("errored: "): n for k, n in outcomes.items() if k.startswith("errored: ")}
    if errored:
        by = ", ".join(f"{num(n)} at {stage}" for stage, n in errored.items())
        out.append(f"**{num(sum(errored.values()))}** could not be scored by a stage ({by}): they count as errored, "
                   "never as kept or dropped.")
    left = total - sum(errored.values())
    for name, p in summary.get("policies", {}).items():
        out.append(_policy_sentence(name, p, outcomes.get(f"dropped: {name}", 0), left))
        left -= outcomes.get(f"dropped: {name}", 0)
    out.append(f"**{num(int(r['kept']))}** rows kept ({pct(int(r['kept']), total)} of the rows in).")
    return out


def _policy_sentence(name: str, p: Mapping[str, Any], first: int, reached: int) -> str:
    kind = f"{p.get('type') or 'policy'}" + (f" on {p['column']}" if p.get("column") else "")
    text = (f"**{name}** ({kind}) removed **{num(first)}** of the {num(reached)} rows that reached it "
            f"(**{pct(first, reached)}**)")
    kept, dropped = int(p.get("kept", 0)), int(p.get("dropped", 0))
    if dropped == first:
        return text + "."
    ranked = p.get("valid_rows")
    if isinstance(p.get("fraction"), (int, float)) and isinstance(ranked, int):  # a cut over every row it ranks
        return (f"{text}; its fraction {p['fraction']:g} is of all the rows it ranks, not of the survivors: it kept "
                f"{pct(kept, ranked)} of all {num(ranked)} rows ranked, which removed {pct(first, reached)} of what "
                "was left.")
    other = dropped - first
    rows = f"{num(other)} rows it drops are" if other != 1 else "row it drops is"
    return (f"{text}. On its own it keeps {num(kept)} of the {num(kept + dropped)} rows it decides on; the other "
            f"{rows} counted under an earlier policy or as errored.")


def counting_note() -> str:
    """What "dropped" and "dropped first here" mean, for the accounting tables."""
    return ("A row dropped by several policies is counted once, under the first policy in pipeline order that "
            "dropped it: **dropped first here**. A policy's **dropped** counts every row it drops, including rows an "
            "earlier policy had already dropped and rows another stage could not score (those count as errored), so "
            "it can be larger.")
