"""What the report and the CLI show of an `image_info` stage: the images' shorter side against their aspect
ratio, coloured by outcome, with the `image_size` policy's bounds as lines, and the errors by kind.

Read from the manifest (width, height and aspect ratio, streamed part by part; at most MAX_POINTS rows are
plotted, a seeded sample) and summary.json (the policy's bounds).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow.compute as pc

from curate.presentation import OUTCOME, Block, Part, Presenter, RunView, Scatter, Table, Text, num

MAX_POINTS = 5000


class ImageInfoPresenter(Presenter):
    id = "images"
    title = "Image size and aspect ratio"

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        return [_part(run, stage) for stage in members]

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        out = []
        for stage in members:
            d = _scan(run, stage)
            kinds = ", ".join(f"{k} {num(n)}" for k, n in sorted(d["errors"].items(), key=lambda x: -x[1]))
            out.append(f"{stage.name}: {num(d['read'])} images read" + (f"; errors: {kinds}" if kinds else ""))
        return out


def _bounds(run: RunView, stage: Any) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The image_size policies' bounds: (min side cuts, aspect ratio cuts), each (label, value)."""
    sides, ratios = [], []
    for name in run.policies_reading(stage.column("width")):
        p = run.summary.get("policies", {}).get(name, {})
        if isinstance(p.get("min_side"), (int, float)):
            sides.append((f"{name} min side", float(p["min_side"])))
        if isinstance(p.get("max_aspect_ratio"), (int, float)):
            ratios.append((f"{name} max aspect", float(p["max_aspect_ratio"])))
    return sides, ratios


def _scan(run: RunView, stage: Any) -> dict[str, Any]:
    cols = [stage.column(c) for c in ("width", "height", "aspect_ratio", "error")]
    total = sum(run.outcomes().values())
    keep_p = min(1.0, MAX_POINTS / max(total, 1))
    rng = np.random.default_rng(run.seed)
    side, ratio, outcome, errors, read = [], [], [], {}, 0
    for part in run.manifest([*cols, OUTCOME]):
        for kind in part.column(cols[3]).drop_null().to_pylist():
            k = kind.split(":", 1)[0]
            errors[k] = errors.get(k, 0) + 1
        part = part.filter(pc.is_valid(part.column(cols[0])))
        read += part.num_rows
        pick = np.flatnonzero(rng.random(part.num_rows) < keep_p)
        w, h = (np.asarray(part.column(c).to_numpy(zero_copy_only=False), np.float64)[pick] for c in cols[:2])
        side.append(np.minimum(w, h))
        ratio.append(np.asarray(part.column(cols[2]).to_numpy(zero_copy_only=False), np.float64)[pick])
        outcome.append(np.asarray(part.column(OUTCOME).to_numpy(zero_copy_only=False), object)[pick])
    return {"side": _cat(side, np.float64), "ratio": _cat(ratio, np.float64), "outcome": _cat(outcome, object),
            "errors": errors, "read": read, "sampled": keep_p < 1}


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _part(run: RunView, stage: Any) -> Part:
    d = _scan(run, stage)
    sides, ratios = _bounds(run, stage)
    out = d["outcome"].astype(str)
    mine = [f"dropped: {name}" for name in run.policies_reading(stage.column("width"))]
    masks = {"kept": out == "kept", "dropped by image size": np.isin(out, mine),
             "dropped first by another policy": np.char.startswith(out, "dropped: ") & ~np.isin(out, mine),
             "errored in another stage": np.char.startswith(out, "errored: ")}
    groups = {k: (d["side"][m].tolist(), d["ratio"][m].tolist()) for k, m in masks.items() if m.any()}
    blocks: list[Block] = [
        Text(f"Stage **{stage.name}**: {num(d['read'])} images read from their headers"
             + (f"; {num(sum(d['errors'].values()))} could not be read." if d["errors"] else ".")),
        Scatter(f"{stage.name}: shorter side vs aspect ratio", "shorter side (pixels)", "aspect ratio (long / short)",
                groups, sides, ratios, log=True,
                caption="One dot per image, by outcome (a row dropped by several policies counts under the first)"
                        + (f"; a seeded sample of {MAX_POINTS:,} rows." if d["sampled"] else ".")),
    ]
    if d["errors"]:
        blocks.append(Table(["error", "rows"], sorted(d["errors"].items(), key=lambda x: -x[1])))
    return Part(blocks, {"stage": stage.name})
