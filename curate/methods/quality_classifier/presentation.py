"""What the report and the CLI show of a `quality_classifier` stage: the histogram of its scores with the cut of
the policy that reads them (a `threshold`'s `min`, a `keep_fraction`'s or `top_k`'s fitted cut), the rows just
above and just below that cut with their text (the report escapes it), and, for a model trained by
`curate train-classifier`, its training files and held-out metrics.

Read from the manifest (the score column, streamed part by part), summary.json (the policy's cut, the model's
sidecar recorded in the stage's identity) and the input shards (the text of the rows shown).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from curate.presentation import (
    ID,
    ROW,
    SHARD,
    Block,
    Card,
    CardGroup,
    Details,
    Facts,
    Gallery,
    Histogram,
    Part,
    Presenter,
    RunView,
    Text,
    num,
)

BINS = 20
NEAREST = 4  # rows shown on each side of the cut


def policy_cut(run: RunView, column: str) -> tuple[str, float] | None:
    """(policy name, the score it cuts at) of the first policy reading `column` that has one."""
    for name in run.policies_reading(column):
        entry = run.summary.get("policies", {}).get(name, {})
        cut = entry.get("cut") if entry.get("cut") is not None else entry.get("min")
        if cut is not None:
            return name, float(cut)
    return None


def scan(run: RunView, column: str, cut: float | None, nearest: int = NEAREST) -> tuple[np.ndarray, dict, int]:
    """(histogram counts over [0, 1], the rows nearest the cut on each side, rows scored)."""
    edges = np.linspace(0.0, 1.0, BINS + 1)
    counts = np.zeros(BINS, np.int64)
    near: dict[str, list[tuple]] = {"above": [], "below": []}
    scored = 0
    for part in run.manifest([column, ID, SHARD, ROW]):
        score = np.asarray(part.column(column).to_numpy(zero_copy_only=False), np.float64)
        valid = np.flatnonzero(~np.isnan(score))
        scored += len(valid)
        counts += np.histogram(score[valid], edges)[0]
        if cut is None or not nearest:
            continue
        for side, mask in (("above", score[valid] >= cut), ("below", score[valid] < cut)):
            idx = valid[mask]
            for j in idx[np.argsort(np.abs(score[idx] - cut), kind="stable")[:nearest]]:
                near[side].append((abs(float(score[j]) - cut), part.column(SHARD)[j].as_py(),
                                   int(part.column(ROW)[j].as_py()), part.column(ID)[j].as_py(), float(score[j])))
            near[side] = sorted(near[side], key=lambda x: x[0])[:nearest]
    return counts, near, scored


def _training_facts(stage_entry: dict[str, Any]) -> list[Block]:
    training = stage_entry.get("training")
    if not training:
        return [Text("The model has no `curate train-classifier` sidecar: its training data is not recorded here.",
                     "muted")]
    m, c = training.get("holdout_metrics") or {}, training.get("counts") or {}
    files = "; ".join(f"{f['path']} ({num(f['texts'])} texts)" for side in ("positive", "negative")
                      for f in training.get(side) or [])
    return [Facts([("trained on", f"{num(c.get('train_positive'))} positive, {num(c.get('train_negative'))} "
                                  "negative texts", "train"),
                   ("held out", f"{num(c.get('holdout_positive'))} positive, {num(c.get('holdout_negative'))} "
                                "negative", "holdout"),
                   ("held-out AUROC", num(m.get("auroc")), "auroc"),
                   (f"held-out precision / recall at {m.get('cut', 0.5):g}",
                    f"{num(m.get('precision'))} / {num(m.get('recall'))}", "precision_recall")]),
            Details("training files", [Text(files or "none recorded")])]


class QualityPresenter(Presenter):
    id = "quality-classifier"
    title = "Quality classifier"

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        parts: list[Block] = []
        for stage in members:
            column = stage.column("score")
            found = policy_cut(run, column)
            counts, near, scored = scan(run, column, found[1] if found else None)
            entry = run.summary.get("stages", {}).get(stage.name, {})
            cuts = [("cut", found[0], found[1])] if found else []
            blocks: list[Block] = [
                Text(f"Stage **{stage.name}**: P({stage.label}) of {num(scored)} rows"
                     + (f"; policy **{found[0]}** cuts at {found[1]:.4g}." if found else "; no policy cuts on it.")),
                Histogram(column, {"rows": counts}, np.linspace(0.0, 1.0, BINS + 1), cuts,
                          caption=f"P({stage.label}) of each scored row", alt=f"histogram of {column}"),
                *_training_facts(entry)]
            groups = [CardGroup(f"just {side} the cut", [Card(shard, row, id_, lines=[f"score {s:.4f}"],
                                                              highlight=side == "below")
                                                         for _, shard, row, id_, s in near[side]])
                      for side in ("above", "below") if near[side]]
            if groups:
                blocks.append(Gallery(groups, prefer=stage.text_column))
            parts.append(Part(blocks, {"stage": stage.name}))
        return parts

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        out = []
        for stage in members:
            training = run.summary.get("stages", {}).get(stage.name, {}).get("training") or {}
            auroc = (training.get("holdout_metrics") or {}).get("auroc")
            found = policy_cut(run, stage.column("score"))
            out.append(f"{stage.name}: P({stage.label})" + (f", cut {found[1]:.4g} ({found[0]})" if found else "")
                       + (f"; model's held-out AUROC {auroc:.3f}" if auroc is not None else ""))
        return out
