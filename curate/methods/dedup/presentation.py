"""What the report and the CLI show of the dedup stages (one presenter for the three): per stage, the
duplicate groups it found, the rows its policy dropped (exact vs near), the largest groups, and groups side
by side: a seeded sample, and the groups whose weakest merged row is least similar (where a user checks the
radius or threshold); and what helps choose the threshold (thresholds.py): the S-curve, merges far below the
threshold through chains of links, refused pairs just below it. In a group, the words of a dropped text
that its kept text lacks are marked.

Two streaming passes over the manifest, reading only the stage's columns: the first aggregates the groups
with more than one row (memory grows with the duplicate groups, not the rows), the second picks the rows of
the groups shown. Column names come from the stage (`stage.column(...)`, `similarity_name`), so a subclass
that renames its similarity column is shown the same way.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from curate.methods.dedup import thresholds
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
from kernels.hashing import mix64

if TYPE_CHECKING:
    import polars as pl

SAMPLED = 8            # seeded sample of groups shown per stage
NEAR_THRESHOLD = 6     # groups shown for their least similar merged row
PER_GROUP = 5          # dropped rows shown beside the kept row of a group
LARGEST = 5
CHAINS_SHOWN = 3       # groups shown for a dropped row far below the threshold from its kept row
GROUP_COLUMNS = ("component", "size", "dup_of", "match")  # outputs every dedup stage writes


@dataclass(frozen=True)
class _Shown:
    """One dedup stage as its section needs it."""

    stage: Any                  # a GraphStage
    policy: str | None          # the policy deciding on the stage's component column

    @classmethod
    def of(cls, stage: Any, run: RunView) -> _Shown:
        return cls(stage, next(iter(run.policies_reading(stage.column("component"))), None))

    @property
    def similarity(self) -> str | None:
        return self.stage.similarity_name  # None for exact duplicates

    @property
    def larger_is_closer(self) -> bool:
        return not self.stage.similarity_is_distance

    @property
    def label(self) -> str | None:
        """The similarity column as the section names it (an estimate says so)."""
        if not self.similarity:
            return None
        return f"{self.similarity} (MinHash estimate)" if self.stage.similarity_estimated else self.similarity

    @property
    def identical(self) -> float:
        """The similarity of two identical rows: a group whose weakest link has it is near no threshold."""
        return 0.0 if self.stage.similarity_is_distance else 1.0


class DedupPresenter(Presenter):
    id = "dedup"
    title = "Duplicates"

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        parts, kinds = [], {"exact": 0, "near": 0}
        for stage in members:
            d = self.numbers(run, stage)
            parts.append(_part(_Shown.of(stage, run), d))
            kinds[d["kind"]] += d["dropped_first"] or 0
        head = Text(f"Rows dropped as exact duplicates: **{num(kinds['exact'])}**; as near duplicates, beyond those: "
                    f"**{num(kinds['near'])}** (each row counted under the first policy that dropped it).")
        return [head, *parts]

    def numbers(self, run: RunView, stage: Any) -> dict[str, Any]:
        """One stage's counts and the groups shown (`shown`: (component, why) pairs; `groups`: their cards)."""
        st = _Shown.of(stage, run)
        groups = _group_table(st, run)
        # the least similar merged row of each group (kept or not: each row's value is its nearest link), so
        # its largest distance or smallest similarity
        weakest = "sim_min" if st.larger_is_closer else "sim_max"
        d = _counts(st, groups, run.outcomes(), weakest)
        shown = _choose(groups, st, weakest, run.seed)
        largest = groups.sort(["size", "component"], descending=[True, False])["component"].head(
            thresholds.CHAIN_GROUPS).to_list() if not groups.is_empty() else []
        rows = _rows_of(st, run, list(dict.fromkeys([*largest, *(c for c, _ in shown)])))
        checked = thresholds.to_kept(run, stage, rows)  # each dropped row's true similarity to its kept row
        chains = thresholds.chain_components(stage, rows, checked)[:CHAINS_SHOWN]
        d["shown"] = [(c, "chain: merged far below the threshold") for c in chains] + \
            [(c, why) for c, why in shown if c not in chains]
        d["groups"] = _groups_shown(st, d["shown"], rows, checked)
        d["chain_facts"] = thresholds.chain_facts(stage, checked, st.similarity)
        d["near_misses"] = thresholds.near_misses(run, stage, st.similarity) if st.similarity else []
        return d

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        import polars as pl  # (here, not at import: a run that writes no report never loads polars)
        out = []
        for stage in members:
            marked = {"exact": 0, "near": 0}
            for t in run.manifest([stage.column("match")]):
                for kind, n in pl.from_arrow(t).to_series().drop_nulls().value_counts().iter_rows():
                    marked[kind] = marked.get(kind, 0) + n
            out.append(f"  duplicates found by {stage.name}: {sum(marked.values())} row(s) marked duplicate of a kept row "
                       f"({marked['exact']} exact, {marked['near']} near)")
        return out


def _frame(t: Any, st: _Shown) -> pl.DataFrame:
    """A manifest part's rows in groups of more than one row."""
    import polars as pl  # (here, not at import: a run that writes no report never loads polars)
    col = st.stage.column
    df = pl.from_arrow(t)
    sim = pl.col(col(st.similarity)).cast(pl.Float64) if st.similarity else pl.lit(None, pl.Float64)
    return (df.filter(pl.col(col("size")) > 1)
            .select(pl.col(ID).cast(pl.String).alias("id"), pl.col(SHARD).alias("shard"), pl.col(ROW).alias("row"),
                    pl.col(OUTCOME).alias("outcome"), *[pl.col(col(c)).alias(c) for c in GROUP_COLUMNS],
                    sim.alias("sim")))


def _frames(run: RunView, st: _Shown) -> Any:
    cols = [st.stage.column(c) for c in (*GROUP_COLUMNS, *([st.similarity] if st.similarity else []))]
    return (_frame(t, st) for t in run.manifest([ID, SHARD, ROW, OUTCOME, *cols]))


def _group_table(st: _Shown, run: RunView) -> pl.DataFrame:
    """Pass 1: one row per group of more than one row (a group may span parts: partial aggregates, summed)."""
    import polars as pl  # (here, not at import: a run that writes no report never loads polars)
    partial = []
    for df in _frames(run, st):
        partial.append(df.group_by("component").agg(
            pl.col("size").first(), pl.len().alias("rows"), pl.col("dup_of").is_not_null().sum().alias("marked"),
            (pl.col("match") == "exact").sum().alias("exact"), (pl.col("outcome") == "kept").sum().alias("kept"),
            (pl.col("outcome") == f"dropped: {st.policy}").sum().alias("first"),
            pl.col("sim").min().alias("sim_min"), pl.col("sim").max().alias("sim_max")))
    return (pl.concat(partial).group_by("component")
            .agg(pl.col("size").first(), pl.col("rows", "marked", "exact", "kept", "first").sum(),
                 pl.col("sim_min").min(), pl.col("sim_max").max()) if partial else pl.DataFrame())


def _counts(st: _Shown, groups: pl.DataFrame, outcomes: Any, weakest: str) -> dict[str, Any]:
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


def _part(st: _Shown, d: dict[str, Any]) -> Part:
    name, sim = st.stage.name, st.label
    facts = [("groups with more than one row", d["components"], "components"),
             ("rows in them", d["in_components"], "in_components"),
             ("rows marked duplicate of the row kept in their group", d["marked"], "marked"),
             ("rows its policy dropped first (not dropped by an earlier policy)", d["dropped_first"], "dropped_first"),
             ("largest groups (rows)", ", ".join(map(str, d["largest"])), "largest"),
             *([(f"least similar merged row ({sim})", d["weakest"], "weakest")] if sim else []),
             ("groups of which the run kept no row (another policy dropped the one kept here, e.g. a near-duplicate "
              "stage that kept a copy from outside the group)", d["none_kept"], "none_kept"), *d["chain_facts"]]
    how = (f"; {sim} is each row's {'highest similarity' if st.larger_is_closer else 'smallest distance'} to any row "
           "linked to it in the group (a group is a chain of links, so not necessarily to the kept row)") if sim else ""
    note = Text(f"Each group: the kept row (green) and up to a few of its dropped duplicates, least similar first{how}; "
                "the words of a dropped text that the kept text lacks are marked. Shown: groups where a dropped row is "
                "far below the threshold from its kept row (a chain), the groups with the least similar merged row "
                "(where the threshold bites), then a seeded sample of the groups in which this stage's policy dropped "
                "rows that no earlier policy dropped.", "muted")
    title = f"stage {name} ({st.stage.type}, {d['kind']} duplicates{f', policy {st.policy}' if st.policy else ''})"
    prefer = st.stage.data_inputs[0]
    misses = [b for b in d["near_misses"] if isinstance(b, CardGroup)]
    after = [b for b in d["near_misses"] if not isinstance(b, CardGroup)] + ([Gallery(misses, prefer=prefer)] if misses else [])
    return Part([Heading(title), Facts(facts), *thresholds.s_curve(st.stage), note, Gallery(d["groups"], prefer=prefer),
                 *after], {"dedup": name})


def _choose(groups: pl.DataFrame, st: _Shown, weakest: str, seed: int) -> list[tuple[int, str]]:
    """(component, why shown): the least similar groups first, then a seeded sample of the others."""
    import polars as pl  # (here, not at import: a run that writes no report never loads polars)
    if groups.is_empty():
        return []
    near: list[int] = []
    if st.similarity:
        by = groups.filter(pl.col(weakest).is_not_null() & (pl.col(weakest) != st.identical))
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


def _rows_of(st: _Shown, run: RunView, components: list[int]) -> pl.DataFrame:
    """Pass 2: the rows of these groups."""
    import polars as pl  # (here, not at import: a run that writes no report never loads polars)
    if not components:
        return pl.DataFrame(schema={"id": pl.String, "component": pl.Int64, "dup_of": pl.String})
    return pl.concat([df.filter(pl.col("component").is_in(components)) for df in _frames(run, st)])


def _groups_shown(st: _Shown, shown: list[tuple[int, str]], rows: pl.DataFrame,
                  checked: dict[str, float]) -> list[CardGroup]:
    import polars as pl  # (here, not at import: a run that writes no report never loads polars)
    out = []
    for c, why in shown:  # the kept row, then the least similar dropped rows
        g = rows.filter(pl.col("component") == c)
        kept = g.filter(pl.col("dup_of").is_null()).head(1)
        far = not st.larger_is_closer  # least similar first: by the true similarity to the kept row where known
        to_kept = pl.col("id").replace_strict(checked, default=None, return_dtype=pl.Float64).alias("to_kept")
        dups = g.filter(pl.col("dup_of").is_not_null()).with_columns(to_kept).sort(
            ["to_kept", "sim", "id"], descending=[far, far, False], nulls_last=True)
        size = int(g["size"][0])
        more = size - 1 - min(dups.height, PER_GROUP)
        cards = [_card(r, st, True, checked) for r in kept.to_dicts()] + [_card(r, st, False, checked)
                                                                           for r in dups.head(PER_GROUP).to_dicts()]
        caption = f"group {c}: {num(size)} rows, {why}" + (f"; {num(more)} more not shown" if more > 0 else "")
        out.append(CardGroup(caption, cards, {"component": c, "why": why}))
    return out


def _card(r: dict[str, Any], st: _Shown, kept: bool, checked: dict[str, float]) -> Card:
    sim = r["sim"]
    sim = None if sim is None or np.isnan(sim) else sim
    line = "kept" if kept else f"dup of {r['dup_of']}"
    if sim is not None:
        line += f" · {st.similarity} {'≈ ' if st.stage.similarity_estimated else ''}{num(sim)}"
    if kept and r["outcome"] != "kept":
        line += f" · run: {r['outcome']}"
    lines = [line]
    to_kept = checked.get(r["id"]) if not kept else None
    if to_kept is not None:
        far = " · far below the threshold" if thresholds.far_below(st.stage, to_kept) else ""
        lines.append(f"to the kept row: {st.similarity} {num(to_kept)}{far}")
    attrs = {"id": r["id"], "role": "kept" if kept else "dup", **({"sim": sim} if sim is not None else {}),
             **({"to_kept": to_kept} if to_kept is not None else {})}
    return Card(r["shard"], r["row"], r["id"], lines, highlight=kept, attrs=attrs,
                compare_with=None if kept else r["dup_of"])
