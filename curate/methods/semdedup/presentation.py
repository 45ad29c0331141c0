"""What the report and the CLI show of SemDeDup: its near-duplicate groups, a kept row beside the rows dropped
as its near-duplicates, and a flag on groups whose images differ although their embeddings matched.

A group: the policy drops row j for its cosine to `dup_of`, an earlier row of its cluster; that row may be
dropped in turn, so each dropped row is followed along `dup_of` to the first row the policy kept (its
root). The root and every dropped row reaching it form the group. One streaming pass collects the rows the
policy dropped (memory grows with them, not with the rows); a second reads the roots of the groups shown.

SemDeDup compares only the embedded column (e.g. captions): rows with one generic caption and quite different
pictures land in one group. Where the input also holds images the embedding did not see, each shown group's
images are compared by a difference hash and a group whose images are far apart is flagged.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from curate.errors import CurateError
from curate.methods.image_files import difference_hash
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
    Heading,
    Part,
    Presenter,
    RunView,
    Text,
    num,
)
from kernels.hashing import hash_strings, mix64

_REASON = re.compile(r"^near-duplicate of .* \(cosine (?P<v>\S+) > (?:1|#) - epsilon = (?P<t>\S+)\)$")
LARGEST = 4          # the largest groups shown
SAMPLED = 8          # then a seeded sample of the others
PER_GROUP = 5        # dropped rows shown beside the kept one
DIFFERENT = 16       # difference-hash bits (of 64) from which two images count as different pictures


class NearDuplicatesPresenter(Presenter):
    """SemDeDup's section (its stages) and its policy's drop reasons in plain words."""

    id = "semdedup"
    title = "Near-duplicates (SemDeDup)"

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        parts = []
        for stage in (m for m in members if getattr(m, "kind", "") == "stage"):
            policy = next(iter(run.policies_reading(stage.column("max_sim_prev"))), None)
            parts.append(_part(run, stage, policy))
        return parts

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        out = []
        for stage in (m for m in members if getattr(m, "kind", "") == "stage"):
            policy = next(iter(run.policies_reading(stage.column("max_sim_prev"))), None)
            if policy:
                groups = groups_of(run, stage, policy)
                out.append(f"  near-duplicates removed by {policy}: {num(int(groups['dropped'].sum()))} row(s) "
                           f"in {num(groups.height)} group(s) around a kept row")
        return out

    def reason(self, member: Any, pattern: str) -> str:
        m = _REASON.match(pattern)
        if m is None:
            return pattern
        return (f"a near-duplicate of an earlier row of its cluster: the cosine of their embeddings, {m['v']}, is "
                f"above 1 - epsilon = {m['t']}")


def dropped_rows(run: RunView, stage: Any, policy: str) -> pl.DataFrame:
    """Pass 1: the rows `policy` dropped, with the row each was compared to (`parent`) and its root."""
    cols = [ID, SHARD, ROW, OUTCOME, stage.column("dup_of"), stage.column("max_sim_prev"), f"keep.{policy}"]
    frames = [pl.from_arrow(t).filter(pl.col(f"keep.{policy}") == False)  # noqa: E712 (null: not decided)
              .select(pl.col(ID).cast(pl.String).alias("id"), pl.col(stage.column("dup_of")).alias("parent"),
                      pl.col(SHARD).alias("shard"), pl.col(ROW).alias("row"), pl.col(OUTCOME).alias("outcome"),
                      pl.col(stage.column("max_sim_prev")).cast(pl.Float64).alias("sim"))
              for t in run.manifest(cols)]
    df = pl.concat(frames) if frames else pl.DataFrame(schema={"id": pl.String, "parent": pl.String})
    return df.with_columns(root=_roots(df.select("id", "parent")))


def _roots(links: pl.DataFrame) -> pl.Series:
    """Each dropped row's root: `parent` followed while it names a dropped row (pointer jumping: each round
    halves the rest of every chain, so a chain of n links takes log2(n) rounds)."""
    d = links.rename({"parent": "root"})
    while True:
        step = d.join(links.rename({"id": "root", "parent": "next"}), on="root", how="left")
        if step["next"].null_count() == step.height:
            return d["root"]
        d = step.select("id", pl.coalesce("next", "root").alias("root"))
        links = d.rename({"root": "parent"})


def groups_of(run: RunView, stage: Any, policy: str) -> pl.DataFrame:
    """One row per group: its root, rows dropped into it, and of those the ones this policy dropped first."""
    return _groups(dropped_rows(run, stage, policy), policy)


def _groups(rows: pl.DataFrame, policy: str) -> pl.DataFrame:
    return (rows.filter(pl.col("root").is_not_null()).group_by("root").agg(pl.len().alias("dropped"),
                                      (pl.col("outcome") == f"dropped: {policy}").sum().alias("first"))
            .sort(["dropped", "root"], descending=[True, False]))


def _choose(groups: pl.DataFrame, seed: int) -> list[tuple[str, str]]:
    """(root, why shown): the largest groups, then a seeded sample of the others."""
    largest = groups["root"].head(LARGEST).to_list()
    rest = groups.filter(~pl.col("root").is_in(largest))
    h = mix64(hash_strings(rest["root"].to_arrow()) ^ mix64(np.uint64(seed)))
    sampled = rest.with_columns(pl.Series("h", h, pl.UInt64)).sort("h")["root"].head(SAMPLED).to_list()
    return [(r, "one of the largest") for r in largest] + [(r, "sampled") for r in sampled]


def _roots_rows(run: RunView, roots: list[str]) -> dict[str, dict[str, Any]]:
    """Pass 2: the shard, row and outcome of each root."""
    out: dict[str, dict[str, Any]] = {}
    for t in run.manifest([ID, SHARD, ROW, OUTCOME]):
        df = pl.from_arrow(t).with_columns(pl.col(ID).cast(pl.String)).filter(pl.col(ID).is_in(roots))
        out.update({r[ID]: {"shard": r[SHARD], "row": r[ROW], "outcome": r[OUTCOME]} for r in df.to_dicts()})
    return out


def _image_column(run: RunView, stage: Any) -> str | None:
    """An image column of the input that the embedding did not see (its source named in its stage's params)."""
    try:
        schema = run.input_schema()
    except (CurateError, OSError):
        return None
    seen = set(run.stage_inputs(stage.embedding.split(".", 1)[0])) | {stage.embedding}
    return next((f.name for f in schema if f.name not in seen
                 and (pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type))), None)


def _hashes(run: RunView, cards: list[dict[str, Any]], column: str) -> dict[str, Any]:
    """Each card's (difference hash, size) by id, None where its image does not decode or cannot be read."""
    out: dict[str, Any] = {}
    by_shard: dict[str, list[dict[str, Any]]] = {}
    for c in cards:
        by_shard.setdefault(c["shard"], []).append(c)
    for shard, cs in by_shard.items():
        try:
            images = run.input_rows(shard, [int(c["row"]) for c in cs], [column]).column(column).to_pylist()
        except (CurateError, OSError):
            images = [None] * len(cs)
        out.update({c["id"]: difference_hash(b) for c, b in zip(cs, images)})
    return out


def _distance(a: Any, b: Any) -> int | None:
    return None if a is None or b is None else (a[0] ^ b[0]).bit_count()


def _group(root: str, why: str, rows: pl.DataFrame, at: dict[str, Any], column: str | None, run: RunView,
           policy: str) -> tuple[CardGroup, bool]:
    """The kept row and its least similar dropped rows as cards; flagged if their images are far apart."""
    members = rows.filter(pl.col("root") == root).sort(["sim", "id"])
    shown = members.head(PER_GROUP).to_dicts()
    kept = {"id": root, **at[root]}
    hashes = _hashes(run, [kept, *shown], column) if column else {}
    far = [d for d in (_distance(hashes.get(root), hashes.get(r["id"])) for r in shown) if d is not None]
    flagged = bool(far) and max(far) >= DIFFERENT
    cards = [Card(kept["shard"], kept["row"], root, [f"kept by {policy}" + (
        f" · run: {kept['outcome']}" if kept["outcome"] != "kept" else "") + _size(hashes.get(root))],
        highlight=True, attrs={"id": root, "role": "kept"})]
    for r in shown:
        d = _distance(hashes.get(root), hashes.get(r["id"]))
        image = f" · image {d} of 64 bits from the kept one" if d is not None else ""
        cards.append(Card(r["shard"], r["row"], r["id"],
                          [f"dropped: cosine {r['sim']:.5f} to {r['parent']}" + image + _size(hashes.get(r["id"]))],
                          attrs={"id": r["id"], "role": "dup", "far": int(d is not None and d >= DIFFERENT)},
                          compare_with=root))
    more = members.height - len(shown)
    caption = (f"group of {num(members.height + 1)} rows around {root}, {why}"
               + (f"; {num(more)} more dropped rows not shown" if more > 0 else "")
               + ("; IMAGES DIFFER: the embedding matched, the pictures do not (difference hash up to "
                  f"{max(far)} of 64 bits apart)" if flagged else ""))
    return CardGroup(caption, cards, {"root": root, "flagged": int(flagged), "size": members.height + 1}), flagged


def _size(h: Any) -> str:
    return f" · {h[1][0]}×{h[1][1]} px" if h is not None else ""


def _part(run: RunView, stage: Any, policy: str | None) -> Part:
    head = Heading(f"stage {stage.name}" + (f", policy {policy}" if policy else ""))
    if policy is None:
        return Part([head, Text("No policy decides on this stage's similarity: nothing was dropped.", "muted")],
                    {"near-dups": stage.name})
    rows = dropped_rows(run, stage, policy)
    groups = _groups(rows, policy)
    chosen = _choose(groups, run.seed)
    at = _roots_rows(run, [r for r, _ in chosen])
    column = _image_column(run, stage)
    shown = [_group(r, why, rows, at, column, run, policy) for r, why in chosen if r in at]
    flagged = [g for g, f in shown if f]
    facts = [("rows the policy dropped as near-duplicates", rows.height, "dropped"),
             ("of those, dropped first here (no earlier policy dropped them)",
              int(groups["first"].sum()) if groups.height else 0, "first"),
             ("groups (a kept row and the rows dropped as its near-duplicates)", groups.height, "groups"),
             ("largest groups (rows)", ", ".join(num(int(n) + 1) for n in groups["dropped"].head(5)) or "–", "largest"),
             ("rows dropped for their likeness to a row that was itself dropped (a chain)",
              int(rows["parent"].is_in(rows["id"].implode()).sum()) if rows.height else 0, "chained")]
    if column:
        facts.append((f"groups shown whose pictures ({column}) differ although the embeddings matched", len(flagged),
                      "flagged"))
    how = ("Each group: the row the policy kept (green) and the rows it dropped as its near-duplicates, least similar "
           "first; the words of a dropped text that the kept text lacks are marked. SemDeDup compares only "
           f"{stage.embedding}" + (f"; the {column} column is compared here by a difference hash, and a group whose "
                                   f"pictures are {DIFFERENT} or more of 64 bits apart is flagged (IMAGES DIFFER): the "
                                   "embedding could not tell them apart." if column else "."))
    ordered = [g for g, f in shown if f] + [g for g, f in shown if not f]  # flagged groups first
    return Part([head, Facts(facts), Text(how, "muted"), Gallery(ordered, prefer=_text_column(run, stage))],
                {"near-dups": stage.name})


def _text_column(run: RunView, stage: Any) -> str | None:
    """The input column the embedding was made from, shown on the cards."""
    return next(iter(run.stage_inputs(stage.embedding.split(".", 1)[0])), None)


PRESENTER = NearDuplicatesPresenter()  # one object for the stage and the policy: one section, called with both
