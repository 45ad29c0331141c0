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


def matrix(column: pa.Array | pa.ChunkedArray, d: int | None = None,
           invalid: str = INVALID) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float32 rows of a list column and an object array of per-row errors (None where valid).

    `d` is the expected length; without it, a fixed-size list's size or the most common length. Null
    rows, other lengths and NaN/Inf values get `<invalid>: ...` and a zero row, which must take no part
    in any computation.
    """
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    errors = np.full(n, None, dtype=object)
    if not is_vector_type(arr.type):
        errors[:] = f"{invalid}: column type {arr.type} is not a list of numbers"
        return np.zeros((n, d or 0), np.float32), errors
    null = arr.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_fixed_size_list(arr.type) and (d is None or d == arr.type.list_size):
        d = arr.type.list_size
        values = arr.values.slice(arr.offset * d, n * d)
        if values.type == pa.float16() and not values.null_count:  # (stored embeddings: one pass, a new array)
            x = values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, d)
        else:
            x = _as_float32(values).to_numpy(zero_copy_only=False).reshape(n, d)
    else:
        if pa.types.is_fixed_size_list(arr.type):
            lengths = np.full(n, arr.type.list_size, np.int64)
        else:
            lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        if d is None:
            ok_len = lengths[~null]
            d = int(np.bincount(ok_len).argmax()) if len(ok_len) else 0
        bad_len = ~null & (lengths != d)
        errors[bad_len] = [f"{invalid}: {k} values, expected {d}" for k in lengths[bad_len]]
        x = np.zeros((n, d), np.float32)
        good = np.flatnonzero(~null & ~bad_len)
        if len(good):
            x[good] = _as_float32(pc.list_flatten(arr.take(pa.array(good)))).to_numpy(zero_copy_only=False).reshape(-1, d)
        null = null | bad_len
    if null.any() or not x.flags.writeable:  # (a copy: Arrow's arrays are read-only)
        x = np.where(null[:, None], np.float32(0), x).astype(np.float32, copy=False)
    finite = np.isfinite(x).all(axis=1)
    x[~finite] = 0.0
    errors[null & (errors == None)] = f"{invalid}: null"  # noqa: E711 (elementwise on an object array)
    errors[~null & ~finite] = f"{invalid}: NaN or Inf values"
    return x, errors


def unit_vectors(column: pa.Array | pa.ChunkedArray, d: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`matrix` rows scaled to unit length; zero vectors are invalid too. Each row's result depends on that row
    alone (and on `d`), so rows taken from a column give the rows of the whole column's result."""
    x, errors = matrix(column, d)
    norm = np.linalg.norm(x, axis=1)
    errors[(errors == None) & (norm == 0)] = f"{INVALID}: zero vector"  # noqa: E711
    ok = errors == None  # noqa: E711
    if ok.all():
        x /= norm[:, None]  # (the same quotients as below, without gathering and scattering every row)
    else:
        x[ok] /= norm[ok, None]
    return x, errors


def vector_size(column: pa.Array | pa.ChunkedArray) -> int:
    """The length `matrix` expects of a column's rows when not told: a fixed-size list's size, else the most
    common length of its non-null rows (0 when there are none)."""
    if pa.types.is_fixed_size_list(column.type):
        return column.type.list_size
    if not is_vector_type(column.type):
        return 0
    lengths = pc.list_value_length(column).drop_null().to_numpy(zero_copy_only=False).astype(np.int64)
    return int(np.bincount(lengths).argmax()) if len(lengths) else 0


def valid_vectors(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which rows `unit_vectors` finds valid, without making the float32 matrix where the column allows.

    float16 fixed-size lists (embeddings as stored) are checked on their bits: a row is valid when it is not
    null and has no Inf/NaN (exponent all ones) and some non-zero value; its float32 norm is then > 0 (the
    smallest float16 squared is a normal float32), as `unit_vectors` requires. Other types go through it."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_fixed_size_list(arr.type) and arr.type.value_type == pa.float16()):
        return unit_vectors(arr)[1] == None  # noqa: E711
    n, d = len(arr), arr.type.list_size
    if n == 0 or d == 0:
        return np.zeros(n, bool)  # (a 0-length vector is a zero vector)
    values = arr.values.slice(arr.offset * d, n * d)
    if values.null_count:  # a null inside a vector makes it invalid: the general path names it
        return unit_vectors(arr)[1] == None  # noqa: E711
    bits = np.frombuffer(values.buffers()[1], np.uint16, n * d, values.offset * 2).reshape(n, d)
    ok = ~arr.is_null().to_numpy(zero_copy_only=False)
    ok &= ((bits & 0x7C00) != 0x7C00).all(axis=1)
    ok &= ((bits & 0x7FFF) != 0).any(axis=1)
    return ok


def packed_rows(x: np.ndarray) -> pa.FixedSizeBinaryArray:
    """The rows of a float32 matrix as fixed-size binary values, their bytes unchanged (`unpacked_rows` inverts it).

    For carrying vectors between processes: Parquet writes and reads a fixed-size binary column as plain bytes,
    about 3x and 7x faster than a fixed-size list of floats (whose every value has its own levels)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * d), n, [None, pa.py_buffer(x)])


def unpacked_rows(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The (n, d) float32 matrix of a `packed_rows` column (read-only when it can be a view of Arrow's buffer)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        raise ValueError("packed vector rows must not be null")
    width = arr.type.byte_width
    if width % 4:
        raise ValueError(f"packed vector rows are {width} bytes, not a whole number of float32 values")
    n, d = len(arr), width // 4
    if n == 0 or d == 0:
        return np.zeros((n, d), np.float32)
    return np.frombuffer(arr.buffers()[1], np.float32, n * d, arr.offset * width).reshape(n, d)


def _as_float32(values: pa.Array) -> pa.Array:
    # Arrow's cast of float16 is about twice numpy's astype (`matrix` uses astype where it saves a copy);
    # nulls inside a vector become NaN (invalid).
    out = values if values.type == pa.float32() else pc.cast(values, pa.float32(), safe=False)
    return pc.fill_null(out, float("nan")) if out.null_count else out


def error_array(errors: np.ndarray) -> pa.Array:
    return pa.array(errors.tolist(), pa.string())
