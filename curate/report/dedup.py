"""The report's dedup section, for runs with dedup stages (`exact_dedup`, `minhash_dedup`, `image_hash`, or
any stage with `component`, `size` and `dup_of` columns): per stage, the duplicate groups it found, the
rows its policy dropped (exact vs near), the largest groups, and a gallery of groups side by side: a
seeded sample, and the groups whose weakest merged row is least similar (where a user checks the radius
or threshold).

Two streaming passes over the manifest, reading only the stage's columns: the first aggregates the
groups with more than one row (memory grows with the duplicate groups, not the rows), the second picks
the rows of the groups shown. Their content is read from the input shards by gallery.fetch, only the row
groups holding them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from curate.layout import Part
from curate.report import gallery
from curate.report.stats import outcome_expr, pipeline_order
from curate.storage import AnyPath
from kernels.hashing import mix64

SAMPLED = 8            # seeded sample of groups shown per stage
NEAR_THRESHOLD = 6     # groups shown for their least similar merged row
PER_GROUP = 5          # dropped rows shown beside the kept row of a group
LARGEST = 5
SIMILARITY = {"hamming": False, "jaccard": True}  # column -> larger is more similar
IDENTICAL = {"hamming": 0.0, "jaccard": 1.0}      # a group whose weakest link is this is not near a threshold
_STAGE_COLUMNS = ("component", "size", "dup_of", "match")


@dataclass(frozen=True)
class DedupStage:
    """What the section needs to know of one dedup stage, from the manifest's columns and summary.json."""

    name: str
    similarity: str | None    # e.g. "hamming", or None (exact_dedup has none)
    larger_is_closer: bool
    policy: str | None        # the dedup policy reading this stage's component column
    content_column: str | None  # the column the stage compared (its rows are shown from it)

    def col(self, c: str) -> str:
        return f"{self.name}.{c}"


def dedup_stages(summary: dict[str, Any], schema: pa.Schema) -> list[DedupStage]:
    """The run's dedup stages in pipeline order, found by their manifest columns."""
    _, stages = pipeline_order(schema)
    policies = summary.get("policies", {})
    out = []
    for name in stages:
        if not all(f"{name}.{c}" in schema.names for c in _STAGE_COLUMNS):
            continue
        sim = next((c for c in SIMILARITY if f"{name}.{c}" in schema.names), None)
        policy = next((p for p, e in policies.items() if e.get("column") == f"{name}.component"), None)
        params = summary.get("stages", {}).get(name, {}).get("params", {})
        content = next((params[k] for k in ("image_column", "text_column", "hash_column") if params.get(k)), None)
        out.append(DedupStage(name, sim, SIMILARITY.get(sim, True), policy, content))
    return out


def dedup_sections(summary: dict[str, Any], parts: list[Part], run_dir: AnyPath, outcomes: dict[str, int],
                   seed: int = 0) -> list[dict[str, Any]]:
    """One entry per dedup stage of the run (none for other runs)."""
    if not parts:
        return []
    schema = parts[0].schema()
    policies, _ = pipeline_order(schema)
    return [_section(st, summary, parts, run_dir, outcomes, policies, seed) for st in dedup_stages(summary, schema)]


def _frame(part: Part, st: DedupStage, policies: list[str]) -> pl.DataFrame:
    """The manifest part's rows in groups of more than one row, with the run's outcome of each."""
    cols = [st.col(c) for c in (*_STAGE_COLUMNS, *([st.similarity] if st.similarity else []))]
    t = part.read(["id", "shard", "keep", "error", *[f"keep.{p}" for p in policies], *cols])
    df = pl.from_arrow(t).with_columns(pl.Series("row", np.arange(t.num_rows), pl.Int64),
                                       outcome_expr(policies).alias("outcome"))
    sim = pl.col(st.col(st.similarity)).cast(pl.Float64) if st.similarity else pl.lit(None, pl.Float64)
    return (df.filter(pl.col(st.col("size")) > 1)
            .select(pl.col("id").cast(pl.String), "shard", "row", "keep", "outcome",
                    pl.col(st.col("component")).alias("component"), pl.col(st.col("size")).alias("size"),
                    pl.col(st.col("dup_of")).alias("dup_of"), pl.col(st.col("match")).alias("match"),
                    sim.alias("sim")))


def _section(st: DedupStage, summary: dict[str, Any], parts: list[Part], run_dir: AnyPath,
             outcomes: dict[str, int], policies: list[str], seed: int) -> dict[str, Any]:
    # pass 1: per group (a group may span parts: partial aggregates, then summed)
    partial = []
    for part in parts:
        df = _frame(part, st, policies)
        dup = pl.col("dup_of").is_not_null()
        partial.append(df.group_by("component").agg(
            pl.col("size").first(), pl.len().alias("rows"), dup.sum().alias("marked"),
            (pl.col("match") == "exact").sum().alias("exact"), pl.col("keep").sum().alias("kept"),
            (pl.col("outcome") == f"dropped: {st.policy}").sum().alias("first"),
            pl.col("sim").min().alias("sim_min"), pl.col("sim").max().alias("sim_max")))
    groups = (pl.concat(partial).group_by("component")
              .agg(pl.col("size").first(), pl.col("rows", "marked", "exact", "kept", "first").sum(),
                   pl.col("sim_min").min(), pl.col("sim_max").max()) if partial else pl.DataFrame())
    # the least similar merged row of each group (kept or not: each row's value is its nearest link), so
    # its largest distance or smallest Jaccard
    weakest = "sim_min" if st.larger_is_closer else "sim_max"
    figures = _counts(st, groups, outcomes, weakest)
    shown = _choose(groups, st, weakest, seed)
    return {"name": st.name, "type": summary.get("stages", {}).get(st.name, {}).get("type"),
            "similarity": st.similarity, "policy": st.policy, **figures,
            "groups": _gallery(st, shown, summary, parts, run_dir, policies)}


def _counts(st: DedupStage, groups: pl.DataFrame, outcomes: dict[str, int], weakest: str) -> dict[str, Any]:
    dropped_first = outcomes.get(f"dropped: {st.policy}", 0) if st.policy else None
    if groups.is_empty():
        return {"components": 0, "in_components": 0, "marked": 0, "kind": "near" if st.similarity else "exact",
                "dropped_first": dropped_first, "none_kept": 0, "largest": [], "weakest": None}
    w = groups[weakest].drop_nulls()
    marked = int(groups["marked"].sum())
    return {"components": groups.height, "in_components": int(groups["size"].sum()), "marked": marked,
            "kind": "exact" if marked and int(groups["exact"].sum()) == marked else "near",
            "dropped_first": dropped_first,
            "none_kept": int((groups["kept"] == 0).sum()),  # a later or earlier policy dropped every copy
            "largest": groups["size"].sort(descending=True).head(LARGEST).to_list(),
            "weakest": (w.min() if st.larger_is_closer else w.max()) if len(w) else None}


def _choose(groups: pl.DataFrame, st: DedupStage, weakest: str, seed: int) -> list[tuple[int, str]]:
    """(component, why shown): the least similar groups first, then a seeded sample of the others."""
    if groups.is_empty():
        return []
    near: list[int] = []
    if st.similarity:
        by = groups.filter(pl.col(weakest).is_not_null() & (pl.col(weakest) != IDENTICAL.get(st.similarity)))
        by = by.sort([weakest, "component"], descending=[not st.larger_is_closer, False])
        near = by["component"].head(NEAR_THRESHOLD).to_list()
    rest = groups.filter(~pl.col("component").is_in(near))
    if (rest["first"] > 0).any():
        # groups where this stage's policy dropped rows no earlier policy dropped: what the stage adds (after
        # exact_dedup, a near-duplicate stage's groups of byte copies alone add nothing)
        rest = rest.filter(pl.col("first") > 0)
    h = mix64(rest["component"].cast(pl.UInt64, wrap_numerical=True).to_numpy() ^ mix64(np.uint64(seed)))
    sampled = rest.with_columns(pl.Series("h", h, pl.UInt64)).sort("h")["component"].head(SAMPLED).to_list()
    return [(c, "near the threshold") for c in near] + [(c, "sampled") for c in sampled]


def _gallery(st: DedupStage, shown: list[tuple[int, str]], summary: dict[str, Any], parts: list[Part],
             run_dir: AnyPath, policies: list[str]) -> list[dict[str, Any]]:
    if not shown:
        return []
    wanted = [c for c, _ in shown]
    rows = pl.concat([_frame(part, st, policies).filter(pl.col("component").is_in(wanted)) for part in parts])
    picked = []
    for c in wanted:  # the kept row, then the least similar dropped rows
        g = rows.filter(pl.col("component") == c)
        picked.append(g.filter(pl.col("dup_of").is_null()).head(1))
        order = g.filter(pl.col("dup_of").is_not_null()).sort(["sim", "id"],
                                                              descending=[not st.larger_is_closer, False],
                                                              nulls_last=True)
        picked.append(order.head(PER_GROUP))
    content = {(r["shard"], r["row"]): r for r in gallery.fetch(pl.concat(picked), summary, run_dir,
                                                                 prefer=st.content_column)}
    out = []
    for (c, why), g_kept, g_dup in zip(shown, picked[::2], picked[1::2]):
        size = int(rows.filter(pl.col("component") == c)["size"][0])
        out.append({"component": c, "why": why, "size": size,
                    "kept": [_card(content[(r["shard"], r["row"])]) for r in g_kept.to_dicts()],
                    "dups": [_card(content[(r["shard"], r["row"])]) for r in g_dup.to_dicts()],
                    "more": size - 1 - g_dup.height})
    return out


def _card(r: dict[str, Any]) -> dict[str, Any]:
    sim = r.get("sim")
    return {"id": r["id"], "shard": r["shard"], "outcome": r["outcome"], "dup_of": r["dup_of"],
            "sim": None if sim is None or np.isnan(sim) else sim,
            "thumb": r["thumb"], "text": r["text"], "note": r["note"]}
