"""Embedding columns as float32 matrices: validated and L2-normalised, with a reason for each bad row."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

INVALID = "invalid_embedding"


def is_vector_type(t: pa.DataType) -> bool:
    return (pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)) and \
        (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type))


def vector_type_problem(t: pa.DataType) -> str | None:
    """A plan-time problem with an embedding column's type, or None."""
    if is_vector_type(t):
        return None
    return f"is {t}; needs a list or fixed_size_list of floats (an embedding)"


def unit_vectors(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float32 unit vectors and an object array of per-row errors (None where valid).

    Invalid rows (null, wrong length, NaN/Inf, zero norm) get a zero vector and an
    `invalid_embedding: ...` message; they must take no part in any computation.
    """
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    errors = np.full(n, None, dtype=object)
    if not is_vector_type(arr.type):
        errors[:] = f"{INVALID}: column type {arr.type} is not a list of floats"
        return np.zeros((n, 0), np.float32), errors
    null = arr.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
        flat = _as_float32(arr.values.slice(arr.offset * d, n * d))
        x = flat.to_numpy(zero_copy_only=False).reshape(n, d)
    else:
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy()
        ok_len = lengths[~null]
        d = int(np.bincount(ok_len).argmax()) if len(ok_len) else 0
        bad_len = ~null & (lengths != d)
        errors[bad_len] = [f"{INVALID}: {k} values, expected {d}" for k in lengths[bad_len]]
        x = np.zeros((n, d), np.float32)
        good = np.flatnonzero(~null & ~bad_len)
        if len(good):
            sub = arr.take(pa.array(good))
            x[good] = _as_float32(pc.list_flatten(sub)).to_numpy(zero_copy_only=False).reshape(-1, d)
        null = null | bad_len
    x = np.where(null[:, None], 0.0, x).astype(np.float32, copy=False)
    finite = np.isfinite(x).all(axis=1)
    x[~finite] = 0.0
    norm = np.linalg.norm(x, axis=1)
    errors[null & (errors == None)] = f"{INVALID}: null vector"  # noqa: E711 (elementwise on an object array)
    errors[~null & ~finite] = f"{INVALID}: NaN or Inf values"
    errors[~null & finite & (norm == 0)] = f"{INVALID}: zero vector"
    ok = errors == None  # noqa: E711
    x[ok] /= norm[ok, None]
    return x, errors


def _as_float32(values: pa.Array) -> pa.Array:
    # Arrow's cast of float16 is about twice numpy's astype; nulls inside a vector become NaN (invalid).
    out = values if values.type == pa.float32() else pc.cast(values, pa.float32(), safe=False)
    return pc.fill_null(out, float("nan")) if out.null_count else out


def error_array(errors: np.ndarray) -> pa.Array:
    return pa.array(errors.tolist(), pa.string())
