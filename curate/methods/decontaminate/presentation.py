"""What the report and the CLI show of the `decontaminate` stage: rows and n-grams found per benchmark, the rows
its policy dropped, and the rows with the most overlap, their longest overlapping span in bold inside its context
(the text is escaped by the report: `**` is the only markup, and is taken out of the text first)."""
from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pyarrow.compute as pc

from curate.errors import CurateError
from curate.presentation import ID, OUTCOME, ROW, SHARD, Block, Details, Part, Presenter, RunView, Table, Text, num

SHOWN = 10     # contaminated rows shown, most n-grams first
CONTEXT = 160  # characters shown on each side of the span


def numbers(run: RunView, stage: Any) -> dict[str, Any]:
    """Rows and n-grams per benchmark, rows scored, the policy's drops and the rows with most n-grams, in one pass."""
    c = stage.column
    policy = next(iter(run.policies_reading(c("ngrams"))), None)
    rows, grams = Counter(), Counter()
    scored = dropped = 0
    top: list[tuple] = []
    cols = [c("ngrams"), c("benchmark"), c("item"), c("start"), c("end"), c("longest"), ID, SHARD, ROW, OUTCOME]
    for part in run.manifest(cols):
        scored += part.num_rows - part.column(c("ngrams")).null_count
        if policy:
            dropped += int(pc.sum(pc.equal(part.column(OUTCOME), f"dropped: {policy}")).as_py() or 0)
        hit = part.filter(pc.fill_null(pc.greater(part.column(c("ngrams")), 0), False))
        for r in hit.to_pylist():
            rows[r[c("benchmark")]] += 1
            grams[r[c("benchmark")]] += r[c("ngrams")]
            top.append((-r[c("ngrams")], r[ID], r))
        top = sorted(top, key=lambda t: t[:2])[:SHOWN]
    return {"rows": rows, "ngrams": grams, "scored": scored, "policy": policy, "dropped": dropped,
            "top": [t[2] for t in top]}


def snippet(text: str, start: int, end: int) -> str:
    """The span in bold with CONTEXT characters around it, in the text the stage matched (NFKC where not ASCII)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.replace("*", "\u2217")  # so the text cannot open or close the bold markup
    before = text[max(0, start - CONTEXT):start]
    after = text[end:end + CONTEXT]
    return (("…" if start > CONTEXT else "") + before + "**" + text[start:end] + "**" + after
            + ("…" if end + CONTEXT < len(text) else ""))


def examples(run: RunView, stage: Any, top: list[dict]) -> list[Block]:
    """Each shown row: its id, the item it overlaps, and its span in context (or why the text is not shown)."""
    c = stage.column
    out: list[Block] = []
    for r in top:
        head = (f"{r[ID]}: {num(r[c('ngrams')])} n-grams, longest {r[c('longest')]} words; most from "
                f"{r[c('benchmark')]} item {r[c('item')]}")
        try:
            text = run.input_rows(r[SHARD], [r[ROW]], [stage.text]).column(0)[0].as_py()
        except (CurateError, OSError) as e:
            out += [Text(head), Text(f"(text not shown: {e})", "muted")]
            continue
        out += [Text(head), Text(snippet(text, r[c("start")], r[c("end")]), "muted")]
    return out


class DecontaminatePresenter(Presenter):
    id = "decontaminate"
    title = "Benchmark contamination"

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        parts: list[Block] = []
        for stage in members:
            d = numbers(run, stage)
            table = Table(["benchmark", "rows overlapping", "n-grams found"],
                          [[b, d["rows"][b], d["ngrams"][b]] for b in sorted(d["rows"])], empty="no overlap found")
            said = (f"Policy **{d['policy']}** dropped {num(d['dropped'])} rows." if d["policy"] else
                    "No policy reads this stage.")
            blocks: list[Block] = [Text(f"Stage **{stage.name}** ({stage.n}-grams): {num(d['scored'])} rows scored, "
                                        f"{num(sum(d['rows'].values()))} overlap a benchmark. {said}"), table]
            if d["top"]:
                blocks.append(Details(f"{stage.name}: the {len(d['top'])} rows with most overlap, longest span in "
                                      "bold", examples(run, stage, d["top"])))
            parts.append(Part(blocks, {"stage": stage.name}))
        return parts

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        out = []
        for stage in members:
            d = numbers(run, stage)
            found = ", ".join(f"{b} {num(d['rows'][b])} rows" for b in sorted(d["rows"]))
            out.append(f"{stage.name}: {found or 'no benchmark overlap'}"
                       + (f"; {d['policy']} dropped {num(d['dropped'])} rows" if d["policy"] else ""))
        return out



