"""Compressed sizes and batched normalised compression distance (NCD) for ZIP-FIT.

C(s) is the size in bytes of the gzip encoding of s at a given level. The gzip and zlib containers
wrap the same DEFLATE stream: gzip adds a 10-byte header and an 8-byte trailer, zlib a 2-byte header
and a 4-byte trailer, so `len(gzip.compress(b, L)) == len(zlib.compress(b, L)) + GZIP_FRAMING` byte for
byte (tests check it for every level). Computing through zlib skips gzip's CRC-32 and header assembly.

The pair sizes C(x + y) are the hot path (one DEFLATE run per candidate-target pair): the C library
does the work with the GIL released; Python only walks the pairs, one candidate at a time, so memory
holds one row of n sizes, never the N x n pair list.

Backends: `zlib` is exact (byte-identical to `gzip.compress`). `isal` (ISA-L, levels 1-3) produces a
different, valid DEFLATE stream: faster, near-faithful, labelled in outputs. Both report sizes with
the same +12 gzip framing.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

GZIP_FRAMING = 12  # gzip (10 + 8 bytes) minus zlib (2 + 4 bytes) container overhead
BACKENDS = ("zlib", "isal")
LEVELS = {"zlib": range(1, 10), "isal": range(1, 4)}  # level 0 is refused: stored blocks do not compress

SizeFn = Callable[[bytes], int]


def _isal_compress() -> Callable[[bytes, int], bytes]:
    try:
        from isal import isal_zlib
    except ImportError as e:  # pragma: no cover - isal is a declared dependency
        raise ImportError("backend 'isal' needs the `isal` package (pip install isal)") from e
    return isal_zlib.compress


def check_level(level: int, backend: str = "zlib") -> None:
    """Raise ValueError unless `level` compresses with `backend` (level 0 never does)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown DEFLATE backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level not in LEVELS[backend]:
        lo, hi = LEVELS[backend][0], LEVELS[backend][-1]
        zero = (" Level 0 writes stored (uncompressed) blocks, so C(x+y) ~ C(x) + C(y) and the score "
                "only measures length (the zip-fit package's default does this).") if level == 0 else ""
        raise ValueError(f"compression level must be an integer in [{lo}, {hi}] for backend {backend!r}, "
                         f"got {level!r}.{zero}")


def _compressor(level: int, backend: str) -> Callable[[bytes, int], bytes]:
    check_level(level, backend)
    return zlib.compress if backend == "zlib" else _isal_compress()


def size_function(level: int, backend: str = "zlib") -> SizeFn:
    """A function bytes -> gzip size at `level` (zlib size + GZIP_FRAMING)."""
    compress = _compressor(level, backend)

    def size(data: bytes) -> int:
        return len(compress(data, level)) + GZIP_FRAMING

    return size


def gzip_sizes(texts: Sequence[bytes], level: int, backend: str = "zlib") -> np.ndarray:
    """C(s) for each byte string, as int64."""
    size = size_function(level, backend)
    return np.fromiter((size(t) for t in texts), dtype=np.int64, count=len(texts))


def ncd(c_x: np.ndarray | int, c_y: np.ndarray | int, c_xy: np.ndarray | int) -> np.ndarray:
    """NCD = (C(xy) - min(C(x), C(y))) / max(C(x), C(y)), vectorised; not clipped (it can exceed 1)."""
    c_x, c_y, c_xy = (np.asarray(a, dtype=np.float64) for a in (c_x, c_y, c_xy))
    return (c_xy - np.minimum(c_x, c_y)) / np.maximum(c_x, c_y)


def alignment(candidates: Sequence[bytes], targets: Sequence[bytes], target_sizes: np.ndarray,
              level: int, backend: str = "zlib", candidate_sizes: np.ndarray | None = None) -> np.ndarray:
    """ZIP-FIT alignment of each candidate: 1 - mean_j NCD(x, y_j), with x first in the concatenation.

    `target_sizes` are the cached C(y_j); `candidate_sizes` the cached C(x) (computed when None).
    Returns float64, one value per candidate. Work: one DEFLATE run per (candidate, target) pair.
    """
    compress = _compressor(level, backend)
    n = len(targets)
    if n == 0:
        raise ValueError("alignment needs at least one target")
    c_y = np.asarray(target_sizes, dtype=np.float64)
    if len(c_y) != n:
        raise ValueError(f"{n} targets but {len(c_y)} target sizes")
    c_x = gzip_sizes(candidates, level, backend) if candidate_sizes is None else np.asarray(candidate_sizes)
    out = np.empty(len(candidates), dtype=np.float64)
    targets = list(targets)
    for i, x in enumerate(candidates):
        c_xy = np.array([len(compress(x + y, level)) for y in targets], dtype=np.float64) + GZIP_FRAMING
        out[i] = 1.0 - ncd(c_x[i], c_y, c_xy).mean()
    return out


# --------------------------------------------------------------------------------------------------
# Dictionary prefilter (a different, set-level score; not NCD): one zstd compression per candidate
# --------------------------------------------------------------------------------------------------
def train_dictionary(targets: Sequence[bytes], dict_size: int = 16_384) -> tuple[bytes, str]:
    """A zstd dictionary of the targets: trained (zstd's COVER trainer) when zstd can, else their raw
    bytes (too few or too small samples); returns (dictionary bytes, 'trained' | 'raw')."""
    import zstandard

    try:
        return zstandard.train_dictionary(dict_size, list(targets)).as_bytes(), "trained"
    except zstandard.ZstdError:
        return b"".join(targets)[-dict_size:], "raw"


def dictionary_sizes(texts: Sequence[bytes], dictionary: bytes, kind: str, level: int = 3) -> np.ndarray:
    """zstd frame size of each text compressed with `dictionary` (no checksum, no content size)."""
    import zstandard

    dict_type = zstandard.DICT_TYPE_AUTO if kind == "trained" else zstandard.DICT_TYPE_RAWCONTENT
    d = zstandard.ZstdCompressionDict(dictionary, dict_type=dict_type)
    cctx = zstandard.ZstdCompressor(level=level, dict_data=d, write_checksum=False, write_content_size=False,
                                    write_dict_id=False)
    return np.fromiter((len(cctx.compress(t)) for t in texts), dtype=np.int64, count=len(texts))
