"""What the report shows, computed from a run's manifest in two streaming passes over its parts.

Pass 1 reads the float columns for their ranges; pass 2 bins them (a fine histogram, from which both the
plotted histogram and the threshold sweep come), counts rows by outcome (kept, first dropping policy,
first erroring stage) and by reason pattern, and picks a deterministic sample of rows per outcome: the
rows with the smallest hash of (seed, id). Memory is bounded by the bins and the samples, not the rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curate.layout import Part
from kernels.hashing import hash_strings, mix64

FINE_BINS = 1200      # sweep resolution; the plotted histogram merges them
PLOT_BINS = 60
PER_GALLERY = 12
MAX_PATTERNS = 8      # reasons listed per policy (after its presenter words them; the rest summed as one line)
HELD_PATTERNS = 1000  # patterns kept per policy for that wording (ids in a reason make many patterns of one rule)
KEPT = "kept"
_NUMBER = re.compile(r"(?i)-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")  # (?i) inline: polars gets the pattern text
_ENGINE = {"id", "shard", "keep", "drop_reason", "error"}


@dataclass
class ScoreStats:
    """One float column: its valid-row count, range and fine histogram."""

    column: str
    lo: float = np.inf
    hi: float = -np.inf
    valid: int = 0
    nulls: int = 0
    counts: np.ndarray | None = None

    @property
    def edges(self) -> np.ndarray:
        hi = self.hi if self.hi > self.lo else self.lo + 1.0  # a constant column still gets one bin
        return np.linspace(self.lo, hi, FINE_BINS + 1)

    def plot_hist(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges) with PLOT_BINS bins."""
        step = FINE_BINS // PLOT_BINS
        return self.counts.reshape(PLOT_BINS, step).sum(axis=1), self.edges[::step]

    def sweep(self, keep_above: bool) -> tuple[np.ndarray, np.ndarray]:
        """(thresholds, rows kept): rows with score >= t (keep_above) or <= t, at every fine bin edge."""
        c = np.concatenate([[0], np.cumsum(self.counts)])  # rows below each edge
        kept = self.valid - c if keep_above else c
        return self.edges, kept


@dataclass
class ManifestStats:
    rows: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)           # kept / dropped: p / errored: s -> rows
    patterns: dict[str, dict[str, int]] = field(default_factory=dict)  # policy -> reason pattern -> rows
    scores: dict[str, ScoreStats] = field(default_factory=dict)
    samples: pl.DataFrame | None = None                               # sampled rows with their outcome


def float_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_floating(f.type) and f.name not in _ENGINE]


def outcome_expr(policies: list[str]) -> pl.Expr:
    """Each row's outcome: `kept`, `dropped: <first policy that dropped it>` or `errored: <stage>`."""
    first = pl.lit(None, pl.String)
    for p in reversed(policies):  # the first policy in order wins, as in the manifest's drop_reason
        first = pl.when(pl.col(f"keep.{p}").not_()).then(pl.lit(f"dropped: {p}")).otherwise(first)
    return (pl.when(pl.col("error").is_not_null())
            .then(pl.lit("errored: ") + pl.col("error").str.split_exact(":", 1).struct.field("field_0"))
            .when(pl.col("keep")).then(pl.lit(KEPT))
            .otherwise(pl.coalesce(first, pl.lit("dropped: (unknown policy)"))))


def reason_pattern(reason: pl.Expr) -> pl.Expr:
    """A drop reason with its numbers replaced by '#', so rows dropped for the same rule group together."""
    return reason.str.replace_all(_NUMBER.pattern, "#")


def pipeline_order(schema: pa.Schema) -> tuple[list[str], list[str]]:
    """(policies, stages) in pipeline order, from the manifest's column order (summary.json sorts its keys)."""
    policies = [c.removeprefix("keep.") for c in schema.names if c.startswith("keep.")]
    stages = [c.removesuffix(".error") for c in schema.names if c.endswith(".error") and c != "error"]
    return policies, stages


def scan_manifest(parts: list[Part], seed: int = 0, per_gallery: int = PER_GALLERY,
                  extra_columns: list[str] = ()) -> ManifestStats:
    """Histograms, outcome counts, reason patterns and a per-outcome sample of rows (with `extra_columns`,
    e.g. the policies' score columns), from the manifest parts."""
    stats = ManifestStats()
    if not parts:
        return stats
    schema = parts[0].schema()
    policies, stages = pipeline_order(schema)
    floats = float_columns(schema)  # every part has the same columns
    stats.scores = _score_ranges(parts, floats)
    keep_cols = [f"keep.{p}" for p in policies]
    extra = [c for c in dict.fromkeys(extra_columns) if c in schema.names and c not in keep_cols]
    candidates: list[pl.DataFrame] = []
    pattern_counts: list[pl.DataFrame] = []
    outcome_counts: list[pl.DataFrame] = []
    seed_mix = mix64(np.uint64(seed))
    for part in parts:  # pass 2: bins, outcomes, samples
        t = part.read()
        stats.rows += t.num_rows
        _add_to_bins(stats.scores, t)
        df = _with_outcomes(t, policies, [*keep_cols, *extra], seed_mix)
        outcome_counts.append(df.group_by("outcome").len())
        pattern_counts.append(df.filter(pl.col("outcome").str.starts_with("dropped: "))
                              .group_by("outcome", reason_pattern(pl.col("drop_reason")).alias("pattern")).len())
        candidates.append(df.sort("h").group_by("outcome", maintain_order=True).head(per_gallery))
    stats.samples = (pl.concat(candidates).sort("h").group_by("outcome", maintain_order=True).head(per_gallery)
                     .sort("outcome", "h"))
    stats.outcomes = _outcome_totals(outcome_counts, policies, stages)
    stats.patterns = _pattern_totals(pattern_counts)  # one frame per part: never empty
    return stats


def _score_ranges(parts: list[Part], floats: list[str]) -> dict[str, ScoreStats]:
    """Pass 1: each float column's finite range and null count, with empty fine bins over that range."""
    scores = {c: ScoreStats(c) for c in floats}
    for part in parts:
        t = part.read(floats)
        for c in floats:
            v = _finite(t.column(c))
            s = scores[c]
            s.nulls += t.num_rows - len(v)
            if len(v):
                s.lo, s.hi = min(s.lo, float(v.min())), max(s.hi, float(v.max()))
    for s in scores.values():
        if s.lo > s.hi:  # no finite value at all
            s.lo, s.hi = 0.0, 1.0
        s.counts = np.zeros(FINE_BINS, np.int64)
    return scores


def _add_to_bins(scores: dict[str, ScoreStats], t: pa.Table) -> None:
    """Count one part's finite values of each float column into its fine bins."""
    for c, s in scores.items():
        v = _finite(t.column(c))
        s.valid += len(v)
        s.counts += np.histogram(v, bins=s.edges)[0]


def _with_outcomes(t: pa.Table, policies: list[str], columns: list[str], seed_mix: np.uint64) -> pl.DataFrame:
    """One part's engine columns and `columns`, with the row's position, its sampling hash `h` and outcome."""
    df = pl.from_arrow(t.select(["id", "shard", "keep", "drop_reason", "error", *columns]))
    df = df.with_columns(pl.col("id").cast(pl.String),
                         pl.Series("row", np.arange(t.num_rows), pl.Int64),
                         pl.Series("h", mix64(hash_strings(pc.cast(t.column("id"), pa.string())) ^ seed_mix),
                                   pl.UInt64))
    return df.with_columns(outcome_expr(policies).alias("outcome"))


def _outcome_totals(outcome_counts: list[pl.DataFrame], policies: list[str], stages: list[str]) -> dict[str, int]:
    """Rows per outcome over all parts: kept, then drops and errors in pipeline order (unknown ones last)."""
    totals = pl.concat(outcome_counts).group_by("outcome").agg(pl.col("len").sum())
    rank = {KEPT: 0, **{f"dropped: {p}": 1 + i for i, p in enumerate(policies)},
            **{f"errored: {s}": 1 + len(policies) + i for i, s in enumerate(stages)}}
    return dict(sorted(zip(totals["outcome"], totals["len"]), key=lambda kv: (rank.get(kv[0], 10**6), kv[0])))


def _pattern_totals(pattern_counts: list[pl.DataFrame]) -> dict[str, dict[str, int]]:
    """Rows per reason pattern of each dropping policy, most first (the HELD_PATTERNS most frequent)."""
    out = {}
    pc_all = pl.concat(pattern_counts).group_by("outcome", "pattern").agg(pl.col("len").sum())
    for (outcome,), g in pc_all.group_by("outcome"):
        g = g.sort("len", "pattern", descending=[True, False]).head(HELD_PATTERNS)
        out[outcome.removeprefix("dropped: ")] = dict(zip(g["pattern"], g["len"]))
    return out


def _finite(col: pa.ChunkedArray) -> np.ndarray:
    v = np.asarray(col.to_numpy(), dtype=np.float64)  # nulls become NaN
    return v[np.isfinite(v)]


def policy_cuts(policy: dict[str, Any]) -> list[tuple[str, float]]:
    """The cuts a policy's summary entry names, as (label, value): `cut`, `threshold`, `min`, `max`."""
    out = []
    for key in ("cut", "threshold", "min", "max"):
        v = policy.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
            out.append((key, float(v)))
    return out


def keeps_above(policy: dict[str, Any]) -> bool:
    """Whether a policy keeps the rows above its cut (True) or below it."""
    if policy.get("type") == "semdedup" or (policy.get("max") is not None and policy.get("min") is None):
        return False
    return bool(policy.get("largest", True))
