"""Policies turn one score column into keep / drop(reason) for every valid row.

Global cuts are exact and independent of sharding: rows are ordered by (score, tie_key) with
`tie_key = mix64(seed, hash64(id))`, and the boundary is found by a radix select that streams the
score column a few times (16 bits of the 128-bit order key per pass), so memory stays flat at any
row count and the kept count is exactly the requested one.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any, ClassVar, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.errors import ConfigError
from curate.params import Params
from curate.presentation import Presenter
from kernels.hashing import mix64

# A scan yields, per shard, the valid rows' scores (float64) and id hashes (uint64); the engine's scan
# also has `.rows()`, yielding `Rows` with every column the policy lists.
Scan = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]


class Rows(NamedTuple):
    """One shard's valid rows for a policy: the score, id hashes, the policy's other columns, the shard."""

    values: np.ndarray             # float64, the policy's `column`
    id_hash: np.ndarray            # uint64
    cols: dict[str, np.ndarray]    # every column in `Policy.columns`, valid rows only
    shard: str                     # the shard's content fingerprint (keys per-shard randomness)

_DIGIT_BITS = 16
_DIGITS = 65536
HELD_ROWS = 8_000_000  # rows (16 bytes each) select_boundary keeps in memory instead of scanning again
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class RowsScan:
    """A policy scan over in-memory `Rows` (one per shard): fit a policy in a test or script, without the engine."""

    def __init__(self, parts: list[Rows]):
        self.parts = parts

    def rows(self) -> Iterator[Rows]:
        return iter(self.parts)

    def __call__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return ((r.values, r.id_hash) for r in self.parts)


def tie_keys(id_hash: np.ndarray, seed: int) -> np.ndarray:
    """The deterministic tie-break order of rows: depends on (seed, id) only."""
    return mix64(np.asarray(id_hash, dtype=np.uint64) ^ mix64(np.uint64(seed % (1 << 64))))


def order_keys(values: np.ndarray, largest: bool) -> np.ndarray:
    """uint64 keys whose ascending order is the preference order of the scores."""
    v = np.ascontiguousarray(values, dtype=np.float64) + 0.0  # -0.0 -> 0.0
    bits = v.view(np.uint64)
    ascending = np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))
    return ~ascending if largest else ascending


def key_to_value(key: int, largest: bool) -> float:
    """Inverse of `order_keys` for one key."""
    k = np.uint64(key)
    asc = ~k if largest else k
    bits = asc & ~np.uint64(1 << 63) if asc >> np.uint64(63) else ~asc
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def select_boundary(scan: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], k: int) -> tuple[int, int]:
    """The (key, tie) pair T such that exactly k rows have (key, tie) <= T, by radix select.

    `scan` yields (keys, ties) uint64 arrays per shard and may be called several times. Once the rows
    under the digits found so far fit in memory (HELD_ROWS), later digits look only at those rows, and
    each digit found narrows them to the rows under it (one full pass, then passes over a few rows).
    """
    bound = [0, 0]  # [key, tie] digits found so far, high digits first
    need = k
    held: tuple[np.ndarray, np.ndarray] | None = None  # the rows under the digits found so far
    for level in range(8):
        word, shift = divmod(level, 4)
        shift = 64 - _DIGIT_BITS * (shift + 1)
        counts = np.zeros(_DIGITS, dtype=np.int64)
        kept: list[tuple[np.ndarray, np.ndarray]] | None = [] if held is None else None
        size = 0
        for keys, ties in ([held] if held is not None else scan()):
            if level and held is None:  # (held rows are under the prefix already)
                mask = _prefix_mask(keys, ties, bound, level)
                keys, ties = keys[mask], ties[mask]
            col = keys if word == 0 else ties
            counts += np.bincount(((col >> np.uint64(shift)) & np.uint64(_DIGITS - 1)).astype(np.int64),
                                  minlength=_DIGITS)
            if kept is not None:
                size += len(keys)
                if size <= HELD_ROWS:
                    kept.append((keys, ties))
                else:
                    kept = None
        cum = np.cumsum(counts)
        digit = int(np.searchsorted(cum, need))
        need -= int(cum[digit] - counts[digit])
        bound[word] |= digit << shift
        if counts[digit] == need:  # every row under this prefix is kept: fill the rest with ones
            low = (1 << shift) - 1
            bound[word] |= low
            if word == 0:
                bound[1] = (1 << 64) - 1
            break
        parts = kept if kept is not None else ([held] if held is not None else None)
        if parts is not None and level < 7:  # keep only the rows under this digit: the next levels count those
            masks = [_prefix_mask(k_, t_, bound, level + 1) for k_, t_ in parts]
            narrowed = [(k_[m], t_[m]) for (k_, t_), m in zip(parts, masks)]
            held = (np.concatenate([k_ for k_, _ in narrowed]) if narrowed else np.empty(0, np.uint64),
                    np.concatenate([t_ for _, t_ in narrowed]) if narrowed else np.empty(0, np.uint64))
    return bound[0], bound[1]


def _prefix_mask(keys: np.ndarray, ties: np.ndarray, bound: list[int], level: int) -> np.ndarray:
    if level == 0:
        return np.ones(len(keys), dtype=bool)
    if level < 4:
        shift = np.uint64(64 - _DIGIT_BITS * level)
        return (keys >> shift) == np.uint64(bound[0] >> int(shift))
    mask = keys == np.uint64(bound[0])
    if level > 4:
        shift = np.uint64(64 - _DIGIT_BITS * (level - 4))
        mask &= (ties >> shift) == np.uint64(bound[1] >> int(shift))
    return mask


def scatter(values: pa.Array, rows: np.ndarray, n: int) -> pa.Array:
    """An array of length n holding `values` at `rows` (sorted) and nulls elsewhere."""
    index = np.full(n, len(values), dtype=np.int64)
    index[rows] = np.arange(len(rows))
    return pc.take(pa.concat_arrays([values, pa.nulls(1, values.type)]), pa.array(index))


def _fmt(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.round(values, 6)), pa.string())


class RankPresenter(Presenter):
    """How the report words the ranking policies' drop reasons (top_k, keep_fraction); no section of its own.
    Works on a row's reason and on its pattern (numbers as #) alike."""

    _CUT = re.compile(r"^(?P<col>\S+) (?P<v>\S+) (?P<side>below|above) cut (?P<cut>\S+) at ")
    _TIE = re.compile(r"^(?P<col>\S+) (?P<v>\S+) tied at cut ")

    def reason(self, member: Any, pattern: str) -> str:
        best = "highest" if member.largest else "lowest"
        share = (f"the {member.fraction:.0%} of all rows ranked with the {best} {member.column}"
                 if isinstance(member, KeepFraction) else f"the {member.k:,} rows with the {best} {member.column}")
        if m := self._CUT.match(pattern):
            return f"{m['col']} {m['v']} is {m['side']} {m['cut']}, the cut that keeps {share}"
        if m := self._TIE.match(pattern):
            return (f"{m['col']} {m['v']} ties with the last row kept; the tie-break (a hash of the id) left it out of "
                    f"{share}")
        if ": nothing kept at" in pattern:
            return f"{member.column}: the policy keeps no row"
        return pattern


class Policy(Params):
    """Base class. `fit` sees the whole (valid) score column through a scan; `decide` one shard."""

    kind: ClassVar[str] = "policy"
    type: ClassVar[str] = ""
    # What the report and the CLI show of this policy beyond the generic tables (curate/presentation.py).
    presenter: ClassVar[Presenter | None] = None

    def __init__(self, column: str, name: str | None = None):
        if "." not in column:
            raise ConfigError(f"policy {self.type!r}: column {column!r} must name a stage column, like 'wfpp.score'")
        self.column = column
        self.name = name or column.split(".", 1)[0]

    def implied_name(self) -> str | None:
        return self.column.split(".", 1)[0]

    @property
    def stage(self) -> str:
        return self.column.split(".", 1)[0]

    @property
    def columns(self) -> list[str]:
        """The stage columns the policy reads; the first, `column`, decides which rows are valid."""
        return [self.column]

    def outputs(self) -> dict[str, pa.DataType]:
        """Extra manifest columns (`<policy name>.<key>`); `weight` also fills the manifest's `weight`."""
        return {}

    def fit(self, scan: Scan) -> None:
        """Global pass over the valid scores (nothing to do for per-row rules)."""

    def decide(self, values: np.ndarray, id_hash: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """keep (bool) and reason (string, null when kept) for each valid row of one shard."""
        raise NotImplementedError

    def decide_rows(self, rows: Rows) -> tuple[np.ndarray, pa.Array, dict[str, np.ndarray]]:
        """`decide` with every listed column and the shard at hand, plus the policy's extra outputs."""
        keep, reason = self.decide(rows.values, rows.id_hash)
        return keep, reason, {}

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, **{k: v for k, v in self.get_params().items() if k != "name"}}


class Threshold(Policy):
    """Keep rows whose score lies within [min, max] (either bound optional)."""

    type = "threshold"

    def __init__(self, column: Annotated[str, Field(description="the score column, like 'wfpp.score'")],
                 min: Annotated[float | None, Field(description="drop rows scoring below this")] = None,
                 max: Annotated[float | None, Field(description="drop rows scoring above this")] = None,
                 name: Annotated[str | None, Field(description="the policy's name (default: the stage it reads)")]
                 = None):
        super().__init__(column, name)
        if min is None and max is None:
            raise ConfigError(f"policy threshold on {column!r}: give min, max or both")
        if min is not None and max is not None and min > max:
            raise ConfigError(f"policy threshold on {column!r}: min {min} is above max {max}, which would drop every row")
        self.min, self.max = min, max

    def decide(self, values: np.ndarray, id_hash: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        keep = np.ones(len(values), dtype=bool)
        reasons = []
        for bound, bad, word in ((self.max, values > (self.max or 0), "above max"),
                                 (self.min, values < (self.min or 0), "below min")):
            if bound is None:
                continue
            keep &= ~bad
            reasons.append((bad, f" {word} {bound}"))
        dropped = np.flatnonzero(~keep)
        if not len(dropped):
            return keep, pa.nulls(len(values), pa.string())
        # Reasons are formatted for the dropped rows only (the last bound that a row breaks names it), then scattered.
        text = pa.nulls(len(dropped), pa.string())
        shown = _fmt(values[dropped])
        for bad, suffix in reasons:
            text = pc.if_else(pa.array(bad[dropped]), pc.binary_join_element_wise(f"{self.column} ", shown, suffix, ""),
                              text)
        return keep, scatter(text, dropped, len(values))


class TopK(Policy):
    """Keep exactly the k best rows by score (ties broken by tie_key), over the whole dataset."""

    type = "top_k"
    presenter = RankPresenter()

    def __init__(self, column: Annotated[str, Field(description="the score column, like 'wfpp.score'")],
                 k: Annotated[int, Field(ge=0, description="rows kept")],
                 largest: Annotated[bool, Field(description="keep the largest scores (else the smallest)")] = True,
                 seed: Annotated[int, Field(description="tie-break seed")] = 0,
                 name: Annotated[str | None, Field(description="the policy's name (default: the stage it reads)")]
                 = None):
        super().__init__(column, name)
        self.k, self.largest, self.seed = k, largest, seed
        self._bound: tuple[int, int] | None = None
        self._n_valid = 0

    def _target(self, n_valid: int) -> int:
        return min(self.k, n_valid)

    def fit(self, scan: Scan) -> None:
        self._n_valid = sum(len(v) for v, _ in scan())
        k = self._target(self._n_valid)

        def keyed() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for v, h in scan():
                yield order_keys(v, self.largest), tie_keys(h, self.seed)

        self._bound = select_boundary(keyed, k) if k > 0 else None

    @property
    def cut(self) -> float | None:
        """The score of the last kept row."""
        return None if self._bound is None else key_to_value(self._bound[0], self.largest)

    def _what(self) -> str:
        return f"k={self.k}"

    def decide(self, values: np.ndarray, id_hash: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        if self._bound is None:
            keep = np.zeros(len(values), dtype=bool)
            return keep, pa.array([f"{self.column}: nothing kept at {self._what()}"] * len(values), pa.string())
        keys, ties = order_keys(values, self.largest), tie_keys(id_hash, self.seed)
        bk, bt = np.uint64(self._bound[0]), np.uint64(self._bound[1])
        keep = (keys < bk) | ((keys == bk) & (ties <= bt))
        dropped = np.flatnonzero(~keep)
        if not len(dropped):
            return keep, pa.nulls(len(values), pa.string())
        # Reasons are built for the dropped rows only, then scattered (nulls for kept rows).
        side, cut, shown = ("below" if self.largest else "above"), f"{self.cut:.6g}", _fmt(values[dropped])
        text = pc.binary_join_element_wise(f"{self.column} ", shown, f" {side} cut {cut} at {self._what()}", "")
        tied = keys[dropped] == bk
        if tied.any():  # (rarely: only rows with the cut's very score)
            text = pc.if_else(pa.array(tied), pc.binary_join_element_wise(
                f"{self.column} ", shown, f" tied at cut {cut}, lost the tie-break at {self._what()}", ""), text)
        return keep, scatter(text, dropped, len(values))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "valid_rows": self._n_valid, "kept_target": self._target(self._n_valid),
                "cut": self.cut}


class KeepFraction(TopK):
    """Keep round(fraction * valid rows) best rows, exactly (WFPP's keep_ratio)."""

    type = "keep_fraction"

    def __init__(self, column: Annotated[str, Field(description="the score column, like 'wfpp.score'")],
                 fraction: Annotated[float, Field(ge=0, le=1, description="share of valid rows kept")],
                 largest: Annotated[bool, Field(description="keep the largest scores (else the smallest)")] = True,
                 seed: Annotated[int, Field(description="tie-break seed")] = 0,
                 name: Annotated[str | None, Field(description="the policy's name (default: the stage it reads)")]
                 = None):
        super().__init__(column, k=0, largest=largest, seed=seed, name=name)
        self.fraction = float(fraction)

    def _target(self, n_valid: int) -> int:
        return min(n_valid, math.floor(self.fraction * n_valid + 0.5))

    def _what(self) -> str:
        return f"fraction {self.fraction:g}"
