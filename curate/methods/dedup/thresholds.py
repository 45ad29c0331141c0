"""What the dedup section shows to help choose a threshold (presentation.py places it): the banding's
S-curve, the refused candidate pairs just below the threshold, and merges far below it (a group is a chain
of links, so a dropped row may be far from the row kept in its group).

Refused pairs come from the stage's summary (`near_misses`, recorded by the `join_b` step when it verifies
pairs); the true similarity of a dropped row to its kept row is computed here from the rows' own values
(`GraphStage.pair_similarity`), for a bounded number of groups.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from curate.errors import CurateError
from curate.presentation import ID, ROW, SHARD, Block, Card, CardGroup, LineChart, RunView, Text, num
from kernels.hashing import hash_strings
from kernels.minhash import candidate_probability

if TYPE_CHECKING:
    import polars as pl

FAR_BELOW = 0.1      # a merge this far below the threshold (in similarity) is called out
CHAIN_GROUPS = 20    # the largest groups checked for chains (with those shown)
CHAIN_ROWS = 50      # dropped rows checked per group
MISSES_SHOWN = 6


def s_curve(stage: Any) -> list[Block]:
    """The banding's S-curve: P(a pair shares a bucket) against its Jaccard, the threshold marked."""
    if not hasattr(stage, "banding"):
        return []
    banding = stage.banding()
    b, r = banding["bands"], banding["rows"]
    j = np.linspace(0.0, 1.0, 101)
    merged = "every candidate is merged, so a pair left of the threshold is merged with this probability too" \
        if not stage.verifies else "candidates below the threshold are refused (verify)"
    return [LineChart(f"{stage.name}: LSH S-curve ({b} bands x {r} rows)", "Jaccard similarity of a pair",
                      "P(candidate pair)", {"P(candidate)": (j.tolist(), candidate_probability(j, b, r).tolist())},
                      [(stage.name, "threshold", float(stage.similarity_cut))],
                      caption=f"How likely a pair of each Jaccard similarity is to share a bucket in some band; "
                              f"{merged}.", alt=f"S-curve of {stage.name}")]


def near_misses(run: RunView, stage: Any, similarity: str) -> list[Block | CardGroup]:
    """Text, then card groups: the most similar candidate pairs refused by the threshold that did not end up in
    one group anyway (through other links)."""
    if not stage.verifies:
        return [Text("Pairs just below the threshold that were not merged: not known for this stage, since without "
                     "`verify` every LSH candidate is merged and a pair that never shared a bucket is never compared. "
                     "Run it with `verify: true` to see the most similar refused candidates here.", "muted")]
    art = (run.summary.get("stages", {}).get(stage.name, {}) or {}).get("artifact") or {}
    if "near_misses" not in art:
        return [Text("Pairs just below the threshold that were not merged: not recorded by this run (written by an "
                     "older version; re-run to record them).", "muted")]
    misses = art["near_misses"]
    if not misses:
        return [Text("Pairs just below the threshold that were not merged: none (the threshold refused no candidate "
                     "pair).", "muted")]
    wanted = {int(n) for a, b, _ in misses for n in (a, b)}
    rows = _rows_of_nodes(run, stage, wanted)
    groups = []
    for a, b, sim in misses:
        ra, rb = rows.get(int(a)), rows.get(int(b))
        if ra is None or rb is None or ra["component"] == rb["component"]:
            continue  # merged through other links after all
        cards = [Card(ra["shard"], ra["row"], ra["id"], ["refused pair"], attrs={"id": ra["id"], "role": "pair"}),
                 Card(rb["shard"], rb["row"], rb["id"], [f"{similarity} {num(sim)}: not merged"],
                      attrs={"id": rb["id"], "role": "pair", "sim": sim}, compare_with=ra["id"])]
        groups.append(CardGroup(f"not merged: {similarity} {num(sim)} (threshold {num(stage.similarity_cut)})", cards,
                                {"why": "not merged", "sim": sim}))
    note = (f"The most similar candidate pairs the threshold refused that are in different groups: {len(groups)} of the "
            f"{len(misses)} recorded (words of the second text missing from the first are marked).")
    return [Text(note, "muted"), *groups[:MISSES_SHOWN]]


def _rows_of_nodes(run: RunView, stage: Any, nodes: set[int]) -> dict[int, dict[str, Any]]:
    """Manifest rows by the 64-bit hash of their id (the nodes of the dedup graph)."""
    out: dict[int, dict[str, Any]] = {}
    if not nodes:
        return out
    want = np.array(sorted(nodes), np.uint64)
    for t in run.manifest([ID, SHARD, ROW, stage.column("component")]):
        h = hash_strings(t.column(ID).cast(pa.string()))
        for i in np.flatnonzero(np.isin(h, want)):
            out[int(h[i])] = {"id": str(t.column(ID)[int(i)].as_py()), "shard": t.column(SHARD)[int(i)].as_py(),
                              "row": int(t.column(ROW)[int(i)].as_py()),
                              "component": t.column(stage.column("component"))[int(i)].as_py()}
    return out


def to_kept(run: RunView, stage: Any, rows: pl.DataFrame) -> dict[str, float]:
    """The true similarity of each dropped row (up to CHAIN_ROWS per group) to the row kept in its group, by id
    (`rows`: group rows with id, shard, row, component, dup_of); empty where the stage cannot tell or the
    input cannot be read here."""
    import polars as pl  # (here, not at import: a run that writes no report never loads polars)
    nothing = pa.array([], pa.string())
    if rows.is_empty() or stage.pair_similarity(nothing, nothing) is None:  # None: the stage cannot tell
        return {}
    dups = rows.filter(pl.col("dup_of").is_not_null()).sort("id").group_by("component", maintain_order=True).head(CHAIN_ROWS)
    kept = rows.filter(pl.col("dup_of").is_null()).select("id", "shard", "row")
    pairs = dups.join(kept, left_on="dup_of", right_on="id", suffix="_kept")
    try:
        values = _values(run, stage.data_inputs[0], pairs.select("shard", "row").vstack(
            pairs.select(pl.col("shard_kept").alias("shard"), pl.col("row_kept").alias("row"))))
    except (CurateError, OSError):
        return {}
    a = pa.array([values[(s, r)] for s, r in zip(pairs["shard"], pairs["row"])])
    b = pa.array([values[(s, r)] for s, r in zip(pairs["shard_kept"], pairs["row_kept"])])
    sims = stage.similarity_column(stage.pair_similarity(a, b)) if len(a) else np.zeros(0)
    return dict(zip(pairs["id"].to_list(), map(float, sims)))


def _values(run: RunView, column: str, at: pl.DataFrame) -> dict[tuple[str, int], Any]:
    out = {}
    for (shard,), g in at.unique().group_by("shard"):
        rows = g["row"].to_list()
        got = run.input_rows(shard, rows, [column]).column(0).to_pylist()
        out.update({(shard, r): v for r, v in zip(rows, got)})
    return out


def far_below(stage: Any, sim: float | None) -> bool:
    """Whether a similarity is far on the wrong side of the stage's cut (a merge the threshold alone refuses)."""
    cut = stage.similarity_cut
    if sim is None or cut is None or np.isnan(sim) or stage.similarity_is_distance:
        return False  # (a distance within a radius has no "far" on a common scale)
    return sim < cut - FAR_BELOW


def chain_facts(stage: Any, checked: dict[str, float], similarity: str) -> list[tuple[str, Any, str]]:
    if not checked:
        return []
    far = sum(far_below(stage, s) for s in checked.values())
    return [(f"dropped rows far below the threshold from their kept row (true {similarity} < "
             f"{num(stage.similarity_cut - FAR_BELOW)}: merged through a chain of links), of those checked in the "
             f"largest and shown groups", f"{far} of {len(checked)}", "chain_far")]


def chain_components(stage: Any, rows: pl.DataFrame, checked: dict[str, float]) -> Sequence[int]:
    """The groups holding a dropped row far below the threshold from its kept row, worst first."""
    far = [(s, i) for i, s in checked.items() if far_below(stage, s)]
    comp = dict(zip(rows["id"].to_list(), rows["component"].to_list()))
    return list(dict.fromkeys(comp[i] for s, i in sorted(far)))
