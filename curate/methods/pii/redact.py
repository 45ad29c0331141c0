"""Find and redact every kind of `patterns.KINDS` in a string array, vectorised: Arrow's RE2 kernels find the
candidates, and the checks run on all of a batch's candidates at once.

For one kind: count the pattern's matches per row; in the rows with any, wrap each match in a marker
(`replace_substring_regex`), split there, so that the odd pieces of each row's list are its candidates;
check them together; replace the valid ones by the placeholder and join the pieces again. Rows without a
match are not touched after the count, which is what makes sparse data fast.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.methods.pii.patterns import KINDS, NAMES, Kind

_MARK = "\x00\x01"     # wraps each match; a NUL already in the text is escaped so that no marker is ambiguous
_NUL, _ESCAPED = "\x00", "\x00\x02"


def redact(text: pa.Array, kinds: tuple[str, ...] = NAMES) -> tuple[pa.Array, dict[str, np.ndarray]]:
    """(the text with each valid match replaced by its placeholder, int64 counts per kind) of a large_string
    array; null rows stay null and count 0."""
    text = text.cast(pa.large_string())
    counts = {k: np.zeros(len(text), np.int64) for k in kinds}
    for kind in KINDS:
        if kind.name in kinds:
            text, found = _one_kind(text, kind)
            counts[kind.name] += found
    return text, counts


def _one_kind(text: pa.Array, kind: Kind) -> tuple[pa.Array, np.ndarray]:
    """(the text with this kind's valid matches replaced, their count per row)."""
    hits = pc.fill_null(pc.count_substring_regex(text, kind.pattern), 0).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(hits)
    found = np.zeros(len(text), np.int64)
    if not len(rows):
        return text, found
    sub = text.take(pa.array(rows))
    escaped = bool(pc.any(pc.match_substring(sub, _NUL)).as_py())
    if escaped:
        sub = pc.replace_substring(sub, _NUL, _ESCAPED)
    pieces = pc.split_pattern(pc.replace_substring_regex(sub, kind.pattern, _MARK + r"\0" + _MARK), _MARK)
    flat = pieces.flatten()
    parent = pc.list_parent_indices(pieces).to_numpy(zero_copy_only=False)
    starts = pieces.offsets.to_numpy(zero_copy_only=False)
    position = np.arange(len(flat)) - (starts[parent] - starts[0])
    match = np.flatnonzero(position % 2 == 1)
    ok = kind.check(flat.take(pa.array(match))) if kind.check else np.ones(len(match), bool)
    redact_at = np.zeros(len(flat), bool)
    redact_at[match[ok]] = True
    flat = pc.if_else(pa.array(redact_at), pa.scalar(kind.placeholder, pa.large_string()), flat)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(starts - starts[0], pa.int32()), flat),
                            pa.scalar("", pa.large_string()))
    if escaped:
        joined = pc.replace_substring(joined, _ESCAPED, _NUL)
    found[rows] = np.bincount(parent[match[ok]], minlength=len(rows))
    mask = np.zeros(len(text), bool)
    mask[rows] = True
    return pc.replace_with_mask(text, pa.array(mask), joined.cast(pa.large_string())), found
