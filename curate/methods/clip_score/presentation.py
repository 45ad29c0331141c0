"""What the report and the CLI show of a `clip_score` stage: the scores by outcome with each policy's cut, and
the pairs just above and just below the first cut (image and caption side by side), so a user can judge where
the line falls. A warning says when the vectors came from random weights (scores then mean nothing).

Read from the manifest (the score column, streamed part by part) and summary.json (the cuts, the embed
stages' parameters); the report reads the shown rows' images and captions from the input shards.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow.compute as pc

from curate.presentation import (
    ID,
    OUTCOME,
    ROW,
    SHARD,
    Block,
    Card,
    CardGroup,
    Facts,
    Gallery,
    Histogram,
    Part,
    Presenter,
    RunView,
    Text,
    num,
)

NEAREST = 6   # pairs shown on each side of the cut
BINS = 60


class ClipScorePresenter(Presenter):
    id = "clip-score"
    title = "CLIP score"

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        return [_part(run, stage) for stage in members]

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        out = []
        for stage in members:
            d = _scan(run, stage, nearest=0)
            median = f", median {np.median(d['scores']):.4f}" if len(d["scores"]) else ""
            out.append(f"{stage.name}: {num(len(d['scores']))} pairs scored{median}"
                       + "".join(f"; {name} cut {v:.4g}" for name, _, v in d["cuts"])
                       + ("; RANDOM WEIGHTS: scores are meaningless" if _random_init(run, stage) else ""))
        return out


def _cuts(run: RunView, column: str) -> list[tuple[str, str, float]]:
    """(policy, label, value) for each policy deciding on `column`: a threshold's min or a keep_fraction's cut."""
    out = []
    for name in run.policies_reading(column):
        p = run.summary.get("policies", {}).get(name, {})
        for key in ("min", "cut", "max"):
            v = p.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
                out.append((name, key, float(v)))
    return out


def _random_init(run: RunView, stage: Any) -> bool:
    stages = run.summary.get("stages", {})
    embeds = {c.split(".", 1)[0] for c in (stage.image_embedding, stage.text_embedding)}
    return any(stages.get(e, {}).get("params", {}).get("random_init") for e in embeds)


def _scan(run: RunView, stage: Any, nearest: int = NEAREST) -> dict[str, Any]:
    """Valid scores with their outcomes, and the rows nearest to the first cut on each side."""
    column = stage.column("score")
    cuts = _cuts(run, column)
    cut = cuts[0][2] if cuts else None
    decided = {"kept", f"dropped: {cuts[0][0]}"} if cuts else set()  # rows whose fate the cut decides
    scores, outcomes, near = [], [], {"above": [], "below": []}
    errored = 0
    for part in run.manifest([column, OUTCOME, ID, SHARD, ROW]):
        errored += part.column(column).null_count
        part = part.filter(pc.is_valid(part.column(column)))
        v = np.asarray(part.column(column).to_numpy(zero_copy_only=False), np.float64)
        scores.append(v)
        outcomes.append(np.asarray(part.column(OUTCOME).to_numpy(zero_copy_only=False), object))
        if nearest and cut is not None:
            mine = np.isin(outcomes[-1], list(decided))
            for side, mask in (("above", mine & (v >= cut)), ("below", mine & (v < cut))):
                idx = np.flatnonzero(mask)
                pick = idx[np.argsort(np.abs(v[idx] - cut), kind="stable")[:nearest]]
                near[side] += [(abs(v[j] - cut), part.column(SHARD)[j].as_py(), int(part.column(ROW)[j].as_py()),
                                part.column(ID)[j].as_py(), float(v[j]), str(outcomes[-1][j])) for j in pick]
                near[side] = sorted(near[side], key=lambda x: x[0])[:nearest]
    return {"scores": np.concatenate(scores) if scores else np.zeros(0),
            "outcomes": np.concatenate(outcomes) if outcomes else np.zeros(0, object),
            "errored": errored, "cuts": cuts, "near": near}


def _histogram(column: str, d: dict[str, Any]) -> Histogram:
    scores, outcomes = d["scores"], d["outcomes"]
    lo, hi = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
    lo, hi = min([lo, *(v for *_, v in d["cuts"])]), max([hi, *(v for *_, v in d["cuts"])])
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, BINS + 1)
    mine = {f"dropped: {name}" for name, *_ in d["cuts"]}
    masks = {"kept": outcomes == "kept", "dropped by the cut": np.isin(outcomes, list(mine)),
             "dropped first by another policy": (outcomes != "kept") & ~np.isin(outcomes, list(mine))}
    groups = {k: np.histogram(scores[m], edges)[0] for k, m in masks.items() if m.any()}
    return Histogram(column, groups, edges, list(d["cuts"]),
                     caption="Rows by outcome; a row dropped by several policies counts under the first.")


def _part(run: RunView, stage: Any) -> Part:
    d = _scan(run, stage)
    scores = d["scores"]
    facts = [("pairs scored", len(scores), "scored"), ("no score (a vector missing)", d["errored"], "errored"),
             ("image vectors", stage.image_embedding, "image"), ("text vectors", stage.text_embedding, "text")]
    if len(scores):
        facts += [("median score", float(np.median(scores)), "median"),
                  ("5% / 95% quantiles", f"{np.quantile(scores, 0.05):.4f} / {np.quantile(scores, 0.95):.4f}", "q")]
    blocks: list[Block] = []
    if _random_init(run, stage):
        blocks.append(Text("The embed stages ran with **random weights** (`random_init: true`): these scores do "
                           "not measure how well a caption fits its image. Point both embed stages' `weights:` at a "
                           "local open_clip checkpoint for real scores.", "warning"))
    blocks += [Facts(facts), _histogram(stage.column("score"), d)]
    if d["cuts"]:
        name, label, cut = d["cuts"][0]
        groups = [CardGroup(f"just {side} the cut ({name} {label} {cut:.4g}), among the rows every other policy "
                            f"kept",
                            [Card(shard, row, id_, lines=[f"score {value:.4f}", outcome],
                                  highlight=side == "below") for _, shard, row, id_, value, outcome in d["near"][side]])
                  for side in ("above", "below") if d["near"][side]]
        blocks.append(Gallery(groups))
    else:
        blocks.append(Text("No policy reads this score: add `clip_score` (LAION's cut) or `keep_fraction` "
                           "(DataComp's top fraction) on it to see the pairs around the cut.", "muted"))
    return Part(blocks, {"stage": stage.name})
