"""CLIP-style word tokens of a caption column, counted or looked up in a vocabulary, vectorised.

What it does. `split_column` gives the word-level tokens of every row of a string column: the CLIP
simple tokenizer's cleaning (`clean`: ftfy.fix_text, html.unescape twice, strip, collapse whitespace,
lowercase) and its split `PATTERN` (no BPE). `count_words` counts the distinct tokens of a column
(a WFPP fit map); `VocabIndex` maps tokens to a float each (a WFPP factor) in bulk. `tokenize` and
`tokens_per_row` are the plain per-row views, for tests and debugging.

How. Rows whose bytes are all printable ASCII (0x20-0x7E, tab, LF, CR) and contain no `&` are
unchanged by ftfy and HTML unescaping (up to line-break normalisation, which whitespace collapsing
erases), so they are lowercased and split with numpy byte arithmetic over the column's Arrow buffers.
Every other row takes the per-row Python path: `clean`, then the `regex` package split. A token is
keyed by its UTF-8 bytes packed into two uint64 (bytes 0-7 and 8-15), looked up in an open-addressing
table built once; tokens longer than 16 bytes go through a dict.

Why it exists. The obvious polars version (`str.replace_all`/`to_lowercase`/`str.extract_all` with
the same pattern, then `replace_strict` for the lookup) scored ~2x slower: 243k vs 469k captions/s
single-threaded on the same 200k captions. And polars' Rust Unicode tables (`\\p{L}`, lowercasing)
differ from those of `regex` and Python's `str.lower` for newer code points, so it could not give
the reference's tokens on all text.

Exactness. The tokens of every row are identical to `regex.findall(PATTERN, clean(text))` (checked
against testkit/wfpp_reference.py on arbitrary text in tests/kernels/test_words.py). Keys are the
token's bytes, not a hash of them, so a lookup never confuses two words: exact up to 16 bytes, and
longer words are looked up by their string. `TOKENIZER_VERSION` names the pattern, the cleaning and
the Unicode tables that decide the tokens.
"""
from __future__ import annotations

import html
import unicodedata
from dataclasses import dataclass

import ftfy
import numpy as np
import polars as pl
import pyarrow as pa
import regex

PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+"
# The token split and cleaning sequence (bump "clip-word/N" when either changes). The Unicode tables
# of `regex` and of Python's `str.lower` decide the tokens of non-ASCII text, so they are part of it.
TOKENIZER_VERSION = f"clip-word/1 regex={regex.__version__} unicode={unicodedata.unidata_version}"

_TOKEN_RE = regex.compile(PATTERN)
_FTFY_CONFIG = ftfy.TextFixerConfig(explain=False)  # what ftfy.fix_text(text) uses by default

_U64 = np.uint64
_PAD = 32  # zero bytes after every token buffer, so 8-byte loads past a token stay in bounds


# --------------------------------------------------------------------------------------------------
# Cleaning and tokenising
# --------------------------------------------------------------------------------------------------
def clean(text: str) -> str:
    """The reference cleaning: ftfy.fix_text; html.unescape twice; strip; collapse whitespace; lower."""
    text = ftfy.fix_text(text, _FTFY_CONFIG)
    text = html.unescape(html.unescape(text))
    # str.split() splits on str.isspace() runs, the same set as `re`'s \s: strip + collapse.
    return " ".join(text.split()).lower()


def tokenize(text: str) -> list[str]:
    """Tokens of one raw caption (no truncation)."""
    return _TOKEN_RE.findall(clean(text))


def is_string_type(typ: pa.DataType) -> bool:
    """Can `split_column` read a column of this type (a string type, or a dictionary of strings)?"""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)


def _string_array(column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array | None, str | None]:
    """The column as one large_string array, or (None, message) when it is not a string type."""
    if not is_string_type(column.type):
        return None, f"column has type {column.type}, expected a string type"
    if column.type != pa.large_string():
        column = column.cast(pa.large_string())
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column, None


def _arrow_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes uint8, offsets int64 starting at 0, valid bool) of a large_string array."""
    n = len(arr)
    _, obuf, dbuf = arr.buffers()
    offsets = np.frombuffer(obuf, np.int64, count=n + 1, offset=arr.offset * 8) if obuf is not None \
        else np.zeros(n + 1, np.int64)
    lo, hi = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(dbuf, np.uint8, count=hi - lo, offset=lo) if hi > lo else np.zeros(0, np.uint8)
    offsets = offsets - lo
    if arr.null_count:
        valid = np.asarray(arr.is_valid())
    else:
        valid = np.ones(n, bool)
    return data, offsets, valid


def _needs_python(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per row: does it hold a byte outside printable ASCII + tab/LF/CR, or an '&'?"""
    n = len(offsets) - 1
    bad = (data - np.uint8(32)) > 94                     # < 0x20 or > 0x7E (uint8 wrap-around)
    bad &= (data != 9) & (data != 10) & (data != 13)
    bad |= data == 38                                    # '&'
    pos = np.flatnonzero(bad)
    out = np.zeros(n, bool)
    if len(pos):
        out[np.searchsorted(offsets, pos, side="right") - 1] = True
    return out


def _blank_rows(cls: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> None:
    """Mark the bytes of `rows` as whitespace so the byte tokeniser skips them."""
    if len(rows) == 0:
        return
    if len(rows) < 4096:
        for r in rows.tolist():
            cls[offsets[r]:offsets[r + 1]] = 0
    else:
        mask = np.zeros(len(offsets) - 1, bool)
        mask[rows] = True
        cls[np.repeat(mask, np.diff(offsets))] = 0


class WordTokens:
    """Tokens of a set of rows: bytes `buf` (`_PAD` zero bytes after its `size` bytes of text),
    token starts `ts` and ends `te` into it, and `ptr` (rows + 1): the tokens of row i are
    ptr[i]:ptr[i+1]. `may_hold_nul`: whether a token may contain a NUL byte (never on the ASCII path)."""

    __slots__ = ("buf", "ts", "te", "ptr", "may_hold_nul")

    def __init__(self, buf: np.ndarray, ts: np.ndarray, te: np.ndarray, ptr: np.ndarray,
                 may_hold_nul: bool = True):
        self.buf, self.ts, self.te, self.ptr, self.may_hold_nul = buf, ts, te, ptr, may_hold_nul

    def __len__(self) -> int:
        """The number of tokens (over all rows)."""
        return len(self.ts)

    @property
    def size(self) -> int:
        return len(self.buf) - _PAD

    def counts(self) -> np.ndarray:
        """Tokens per row."""
        return np.diff(self.ptr)

    def truncate(self, max_tokens: int) -> WordTokens:
        """The first `max_tokens` tokens of each row."""
        n = self.counts()
        if len(n) == 0 or n.max(initial=0) <= max_tokens:
            return self
        rank = np.arange(len(self.ts)) - np.repeat(self.ptr[:-1], n)
        keep = rank < max_tokens
        ptr = np.zeros_like(self.ptr)
        np.cumsum(np.minimum(n, max_tokens), out=ptr[1:])
        return WordTokens(self.buf, self.ts[keep], self.te[keep], ptr, self.may_hold_nul)

    def strings(self, idx: np.ndarray) -> list[str]:
        """The tokens at positions `idx` as Python strings."""
        buf = self.buf
        return [bytes(buf[s:e]).decode("utf-8") for s, e in zip(self.ts[idx].tolist(), self.te[idx].tolist())]


def _ascii_tokens(data: np.ndarray, offsets: np.ndarray, skip_rows: np.ndarray,
                  clip: int | None = None) -> WordTokens:
    """Lowercase and tokenise rows of printable ASCII with `PATTERN`, in numpy.

    On such text the pattern reduces to: a run of letters, one digit, a run of other non-space
    characters, or (at a token start) an apostrophe contraction 's 't 'm 'd 're 've 'll.
    `skip_rows` get no tokens. With `clip`, only the first `clip` bytes (= characters) of a row count.
    """
    n_rows = len(offsets) - 1
    N = len(data)
    buf = np.zeros(N + _PAD, np.uint8)
    upper = (data - np.uint8(65)) < 26
    np.bitwise_or(data, upper.view(np.uint8) << 5, out=buf[:N])
    low = buf[:N]
    # classes: 0 whitespace, 1 other, 2 letter, 3 digit. In rows of printable ASCII + tab/LF/CR the
    # only bytes <= 32 are whitespace; the other rows are blanked below.
    cls = (low > 32).view(np.uint8)
    cls += ((low - np.uint8(97)) < 26).view(np.uint8)
    cls += ((low - np.uint8(48)) < 10).view(np.uint8) << 1
    _blank_rows(cls, offsets, skip_rows)
    if clip is not None:
        long_rows = np.flatnonzero(np.diff(offsets) > clip)
        for r in long_rows.tolist():
            cls[offsets[r] + clip:offsets[r + 1]] = 0
    if N == 0:
        e = np.zeros(0, np.int64)
        return WordTokens(buf, e, e, np.zeros(n_rows + 1, np.int64), may_hold_nul=False)
    boundary = np.zeros(N + 1, bool)
    boundary[offsets] = True
    space = cls == 0
    start = np.empty(N, bool)
    start[0] = True
    np.not_equal(cls[1:], cls[:-1], out=start[1:])
    start |= cls == 3
    start |= boundary[:-1]
    start &= ~space
    # Contractions: an apostrophe that starts a token followed by s/t/m/d or re/ve/ll, in the same
    # row and not blanked (a clipped row ends at the clip).
    ap = np.flatnonzero(low == 39)
    if len(ap):
        ap = ap[start[ap]]
        ap = ap[(ap + 1 < N)]
        ap = ap[~boundary[ap + 1] & (cls[ap + 1] == 2)]
        if len(ap):
            n1 = low[ap + 1]
            two = (n1 == 115) | (n1 == 116) | (n1 == 109) | (n1 == 100)
            a2 = np.minimum(ap + 2, N - 1)
            n2 = low[a2]
            three = (ap + 2 < N) & ~boundary[ap + 2] & (cls[a2] == 2)
            three &= ((n1 == 114) | (n1 == 118)) & (n2 == 101) | (n1 == 108) & (n2 == 108)
            three &= ~two
            hit = two | three
            i = ap[hit]
            length = np.where(three[hit], 3, 2)
            start[i + 1] = False
            start[(i + 2)[length == 3]] = False
            after = i + length
            after = after[after < N]
            after = after[~boundary[after] & ~space[after]]
            start[after] = True
    end = np.empty(N, bool)
    end[:-1] = start[1:]
    end[-1] = True
    end[:-1] |= space[1:]
    end |= boundary[1:]
    end &= ~space
    ts = np.flatnonzero(start)
    te = np.flatnonzero(end) + 1
    ptr = np.searchsorted(ts, offsets)
    return WordTokens(buf, ts, te, ptr, may_hold_nul=False)


def _python_tokens(texts: list[str], clip: int | None = None, max_tokens: int | None = None) -> WordTokens:
    """Tokenise rows on the per-row Python path (reference cleaning + `regex`)."""
    memo: dict[str, list[str]] = {}
    all_tokens: list[str] = []
    counts = np.zeros(len(texts) + 1, np.int64)
    for i, text in enumerate(texts):
        if clip is not None:
            text = text[:clip]
        toks = memo.get(text)
        if toks is None:
            toks = _TOKEN_RE.findall(clean(text))
            if max_tokens is not None:
                toks = toks[:max_tokens]
            memo[text] = toks
        all_tokens.extend(toks)
        counts[i + 1] = len(toks)
    encoded = [t.encode("utf-8") for t in all_tokens]
    lens = np.fromiter(map(len, encoded), np.int64, count=len(encoded))
    te = np.cumsum(lens)
    ts = te - lens
    raw = b"".join(encoded)
    buf = np.zeros(len(raw) + _PAD, np.uint8)
    buf[:len(raw)] = np.frombuffer(raw, np.uint8)
    return WordTokens(buf, ts, te, np.cumsum(counts))


class ColumnTokens:
    """The tokens of a string column, in two groups: `ascii` holds every row's tokens (none for the
    rows of `python_rows` and for null rows), `python` the tokens of the rows `python_rows`."""

    __slots__ = ("array", "valid", "ascii", "python_rows", "python")

    def __init__(self, array: pa.Array, valid: np.ndarray, ascii: WordTokens, python_rows: np.ndarray,
                 python: WordTokens):
        self.array, self.valid, self.ascii, self.python_rows, self.python = array, valid, ascii, python_rows, python

    def __len__(self) -> int:
        """The number of rows."""
        return len(self.valid)

    def groups(self) -> tuple[tuple[WordTokens, np.ndarray], ...]:
        """(tokens, rows) pairs: row j of `tokens` is row rows[j] of the column; each row sits in one."""
        return (self.ascii, np.arange(len(self.valid))), (self.python, self.python_rows)

    def per_row(self) -> list[list[str] | None]:
        """The tokens of each row as strings (None for a null row)."""
        out: list[list[str] | None] = [None] * len(self.valid)
        for toks, rows in self.groups():
            words = toks.strings(np.arange(len(toks)))
            for j, i in enumerate(rows.tolist()):
                if self.valid[i]:
                    out[i] = words[toks.ptr[j]:toks.ptr[j + 1]]
        return out


def split_column(column: pa.Array | pa.ChunkedArray, max_tokens: int | None = None,
                 clip: int | None = None) -> ColumnTokens:
    """The tokens of each row of a string column (TypeError for other types, see `is_string_type`).

    `max_tokens` keeps the first tokens of each row; `clip` tokenises the first `clip` characters.
    """
    arr, err = _string_array(column)
    if arr is None:
        raise TypeError(err)
    data, offsets, valid = _arrow_parts(arr)
    slow = _needs_python(data, offsets)
    slow &= valid
    slow_rows = np.flatnonzero(slow)
    skip = np.flatnonzero(slow | ~valid)
    fast = _ascii_tokens(data, offsets, skip, clip)
    if max_tokens is not None:
        fast = fast.truncate(max_tokens)
    texts = arr.take(pa.array(slow_rows, pa.int64())).to_pylist() if len(slow_rows) else []
    py = _python_tokens(texts, clip, max_tokens)
    return ColumnTokens(arr, valid, fast, slow_rows, py)


def tokens_per_row(column, max_tokens: int | None = None, clip: int | None = None) -> list[list[str] | None]:
    """The tokens of each row (None for a null row), for tests and debugging.

    `max_tokens` truncates as WFPP scoring does; `clip` keeps the first `clip` characters as its
    counting does.
    """
    return split_column(column, max_tokens, clip).per_row()


# --------------------------------------------------------------------------------------------------
# Token keys and the vocabulary index
# --------------------------------------------------------------------------------------------------
_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_C1 = _U64(0x9E3779B97F4A7C15)
_C2 = _U64(0xC2B2AE3D27D4EB4F)


def _load_u64(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The 8 bytes at each position of buf as little-endian uint64 (positions < len(buf) - 7)."""
    windows = np.ndarray(shape=(len(buf) - 7,), dtype="<u8", buffer=buf, offset=0, strides=(1,))
    return windows[pos]


class _Keys:
    """Tokens as lookup keys. A token's UTF-8 bytes never include NUL, so its bytes 0-7 (k1) and
    8-15 (k2) as zero-padded little-endian integers identify it exactly: short tokens (<= 8 bytes)
    by k1, medium ones (9-16 bytes) by (k1, k2); long ones (> 16 bytes, or holding a NUL) are looked
    up by their string. `k1` covers every token; `other` lists the tokens that are not short."""

    __slots__ = ("n", "k1", "other", "medium", "m1", "m2", "long")

    def __init__(self, tokens: WordTokens):
        ts, te, buf = tokens.ts, tokens.te, tokens.buf
        ln = te - ts
        self.n = len(ts)
        self.k1 = _load_u64(buf, ts)
        self.k1 &= _MASKS[np.minimum(ln, 8)]
        other = ln > 8
        if tokens.may_hold_nul:
            zeros = np.flatnonzero(buf[: tokens.size] == 0)
            if len(zeros):
                tok = np.searchsorted(ts, zeros, side="right") - 1
                tok = tok[(tok >= 0) & (zeros < te[np.maximum(tok, 0)])]
                other[tok] = True
                ln = ln.copy()
                ln[tok] = 17  # treat as long
        self.other = np.flatnonzero(other)
        lo = ln[self.other]
        self.medium = self.other[lo <= 16]
        self.long = self.other[lo > 16]
        self.m1 = self.k1[self.medium]
        self.m2 = _load_u64(buf, ts[self.medium] + 8) & _MASKS[ln[self.medium] - 8]

    def short_mask(self) -> np.ndarray:
        mask = np.ones(self.n, bool)
        mask[self.other] = False
        return mask


def _hash(k1: np.ndarray, k2: np.ndarray | None) -> np.ndarray:
    """Multiplicative (Fibonacci) hash; the table uses its top bits."""
    if k2 is None:
        return k1 * _C1
    return (k1 ^ (k2 * _C2)) * _C1


class _Table:
    """Open-addressing hash table (linear probing) from 1 or 2 uint64 keys to a float64; key
    k1 == 0 marks an empty slot (no token starts with a NUL byte). Load <= 1/4 up to 2^24 slots,
    <= 1/2 beyond. Keys inserted first sit nearest their home slot: insert frequent words first."""

    def __init__(self, k1: np.ndarray, k2: np.ndarray | None, values: np.ndarray):
        n = max(len(k1), 1)
        bits = max(4, int(4 * n - 1).bit_length())
        if bits > 24:
            bits = max(24, int(2 * n - 1).bit_length())
        self.mask = (1 << bits) - 1
        self.shift = _U64(64 - bits)
        self.t1 = np.zeros(self.mask + 1, np.uint64)
        self.t2 = None if k2 is None else np.zeros(self.mask + 1, np.uint64)
        self.val = np.ones(self.mask + 1, np.float64)
        slot = (_hash(k1, k2) >> self.shift).astype(np.intp)
        pending = np.arange(len(k1))
        while len(pending):
            s = slot[pending]
            free = self.t1[s] == 0
            cand = pending[free]
            taken, first = np.unique(s[free], return_index=True)
            win = cand[first]
            self.t1[taken] = k1[win]
            if k2 is not None:
                self.t2[taken] = k2[win]
            self.val[taken] = values[win]
            placed = np.zeros(len(k1), bool)
            placed[win] = True
            pending = pending[~placed[pending]]
            slot[pending] = (slot[pending] + 1) & self.mask

    def lookup(self, k1: np.ndarray, k2: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(value, found) per key; value 1.0 where not found."""
        s = (_hash(k1, k2) >> self.shift).astype(np.intp)
        t = self.t1[s]
        hit = t == k1
        if k2 is not None:
            hit &= self.t2[s] == k2
        value = np.where(hit, self.val[s], 1.0)
        pending = np.flatnonzero((t != 0) & ~hit)
        while len(pending):
            sp = (s[pending] + 1) & self.mask
            s[pending] = sp
            t = self.t1[sp]
            h = t == k1[pending]
            if k2 is not None:
                h &= self.t2[sp] == k2[pending]
            got = pending[h]
            value[got] = self.val[sp[h]]
            hit[got] = True
            pending = pending[(t != 0) & ~h]
        return value, hit


class VocabIndex:
    """Word -> float for a fixed vocabulary: tables for short and medium words, a dict for long ones.

    Insert order decides probe lengths, so words with larger values (more frequent, for WFPP's P)
    are inserted first.
    """

    def __init__(self, words: pa.Array | pa.ChunkedArray, values: np.ndarray):
        arr, err = _string_array(words)
        if arr is None:
            raise TypeError(f"vocabulary words: {err}")
        values = np.asarray(values, np.float64)
        order = np.argsort(-values, kind="stable")
        arr, values = arr.take(pa.array(order)), values[order]
        data, offsets, _ = _arrow_parts(arr)
        if np.any(offsets[1:] == offsets[:-1]):
            raise ValueError("wfpp: the vocabulary artifact holds an empty word")
        buf = np.zeros(len(data) + _PAD, np.uint8)
        buf[: len(data)] = data
        toks = WordTokens(buf, offsets[:-1].copy(), offsets[1:].copy(), np.arange(len(arr) + 1))
        keys = _Keys(toks)
        short = keys.short_mask()
        self.short = _Table(keys.k1[short], None, values[short])
        self.medium = _Table(keys.m1, keys.m2, values[keys.medium])
        self.long = dict(zip(toks.strings(keys.long), values[keys.long].tolist()))

    def lookup(self, tokens: WordTokens) -> tuple[np.ndarray, np.ndarray]:
        """(value, found) per token: value 1.0 and found False for words not in the vocabulary."""
        keys = _Keys(tokens)
        factor, found = self.short.lookup(keys.k1, None)
        if len(keys.other):
            factor[keys.other], found[keys.other] = 1.0, False  # their k1 is only a prefix
            if len(keys.medium):
                factor[keys.medium], found[keys.medium] = self.medium.lookup(keys.m1, keys.m2)
            for j, word in zip(keys.long.tolist(), tokens.strings(keys.long)):
                v = self.long.get(word)
                if v is not None:
                    factor[j], found[j] = v, True
        return factor, found


# --------------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------------
def _key_strings(k1: np.ndarray, k2: np.ndarray) -> pa.Array:
    """Inverse of the keys for tokens of up to 16 bytes: the words as a large_string array."""
    m = np.empty((len(k1), 2), "<u8")
    m[:, 0], m[:, 1] = k1, k2
    b = m.view(np.uint8).reshape(len(k1), 16)
    nz = b != 0
    lens = nz.sum(axis=1)
    offsets = np.zeros(len(k1) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    data = np.ascontiguousarray(b[nz])
    return pa.Array.from_buffers(pa.large_string(), len(k1), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


@dataclass(frozen=True)
class WordCounts:
    """The distinct tokens of a column with their counts, and row tallies."""

    words: pa.Array        # large_string, each word once
    counts: np.ndarray     # int64, one per word
    rows_null: int         # null rows
    rows_no_tokens: int    # non-null rows without tokens
    rows_clipped: int      # non-null rows longer than `clip` characters


def count_words(column: pa.Array | pa.ChunkedArray, clip: int | None = None) -> WordCounts:
    """Count every token of a string column (of the first `clip` characters of each row)."""
    cols = split_column(column, clip=clip)
    arr, valid = cols.array, cols.valid
    fast, py, slow_rows = cols.ascii, cols.python, cols.python_rows
    n = len(arr)
    per_row = fast.counts()
    per_row[slow_rows] = py.counts()
    n_empty = int(np.count_nonzero(valid & (per_row == 0)))
    clipped = np.zeros(n, bool)
    if clip is not None:
        lens = np.diff(_arrow_parts(arr)[1])
        clipped = valid & (lens > clip)
        if clipped.any():
            slow = np.zeros(n, bool)
            slow[slow_rows] = True
            cand = np.flatnonzero(clipped & slow)
            if len(cand):  # non-ASCII rows: count characters, not bytes
                texts = arr.take(pa.array(cand, pa.int64())).to_pylist()
                clipped[cand] = [len(t) > clip for t in texts]
    short, medium, long_words = [], [], []
    for toks in (fast, py):
        if len(toks) == 0:
            continue
        keys = _Keys(toks)
        short.append(keys.k1[keys.short_mask()] if len(keys.other) else keys.k1)
        medium.append(pa.table({"k1": keys.m1, "k2": keys.m2}))
        long_words.extend(toks.strings(keys.long))
    words: list[pa.Array] = []
    counts: list[np.ndarray] = []
    if short:
        k1, n1 = np.unique(np.concatenate(short), return_counts=True)
        m = pa.concat_tables(medium).group_by(["k1", "k2"]).aggregate([([], "count_all")])
        words.append(_key_strings(np.concatenate([k1, m["k1"].to_numpy()]),
                                  np.concatenate([np.zeros(len(k1), np.uint64), m["k2"].to_numpy()])))
        counts += [n1, m["count_all"].to_numpy()]
    if long_words:
        g = pl.Series("word", long_words, pl.String).value_counts(name="count")
        words.append(g["word"].to_arrow().cast(pa.large_string()))
        counts.append(g["count"].cast(pl.Int64).to_numpy())
    return WordCounts(
        words=pa.concat_arrays(words) if words else pa.array([], pa.large_string()),
        counts=np.concatenate(counts).astype(np.int64) if counts else np.zeros(0, np.int64),
        rows_null=int(np.count_nonzero(~valid)), rows_no_tokens=n_empty,
        rows_clipped=int(np.count_nonzero(clipped)))
