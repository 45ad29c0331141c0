"""kernels/compress.py: gzip sizes byte-exact via zlib + 12, NCD, batched alignment (docs/methods/zipfit.md checks 1-3)."""
from __future__ import annotations

import gzip
import zlib

import numpy as np
import pytest

from curate.data.stdlib_code import chunk_lines, stdlib_files
from kernels.compress import (
    GZIP_FRAMING,
    alignment,
    check_level,
    dictionary_sizes,
    gzip_sizes,
    ncd,
    size_function,
    train_dictionary,
)


@pytest.fixture(scope="module")
def texts() -> list[bytes]:
    """Real texts of many sizes: stdlib chunks, whole files up to 64 KB, tiny, repetitive and random bytes."""
    files = [p for rel, p in stdlib_files() if rel.split("/")[0] in ("email", "json", "asyncio")]
    whole = [p.read_bytes() for p in files[:12]]
    chunks = [c.encode() for p in files[:6] for c in chunk_lines(p.read_text(errors="replace"))[:4]]
    rng = np.random.default_rng(0)
    return ([b"", b"a", b"hello world", b"ab" * 3000, rng.bytes(3000), "ünïcødé ✓".encode() * 50]
            + [w[:65536] for w in whole] + chunks)


def test_gzip_size_is_zlib_size_plus_12_at_every_level(texts):
    for level in range(10):
        for t in texts:
            assert len(gzip.compress(t, level)) == len(zlib.compress(t, level)) + GZIP_FRAMING


def test_kernel_sizes_equal_gzip_compress_byte_for_byte(texts):
    for level in range(1, 10):
        want = [len(gzip.compress(t, level)) for t in texts]
        assert gzip_sizes(texts, level).tolist() == want
        assert [size_function(level)(t) for t in texts] == want


def test_self_ncd_of_a_1kb_text_is_small_at_level_1(texts):
    x = next(t for t in texts[6:] if 1000 <= len(t) <= 1400)
    c_x = size_function(1)(x)
    d = float(ncd(c_x, c_x, size_function(1)(x + x)))
    assert d < 0.1
    assert alignment([x], [x], [c_x], 1)[0] == pytest.approx(1 - d)


def test_ncd_is_not_clipped():
    assert ncd(100, 100, 250) == pytest.approx(1.5)
    assert ncd(np.array([10, 20]), 20, np.array([5, 20])).tolist() == pytest.approx([-0.25, 0.0])


def test_level_0_and_unknown_levels_are_refused():
    for bad in (0, 10, -1, 1.5, True, "1"):
        with pytest.raises(ValueError):
            check_level(bad)
    with pytest.raises(ValueError, match="stored"):
        size_function(0)
    with pytest.raises(ValueError):
        check_level(0, "isal")
    with pytest.raises(ValueError):
        check_level(1, "zstd")


def test_alignment_equals_a_brute_force_double_loop_over_gzip(texts):
    cands, targets = texts[6:18], texts[18:26]
    for level in (1, 6):
        brute = []
        for x in cands:
            d = []
            for y in targets:
                cx, cy, cxy = len(gzip.compress(x, level)), len(gzip.compress(y, level)), len(gzip.compress(x + y, level))
                d.append((cxy - min(cx, cy)) / max(cx, cy))
            brute.append(1 - sum(d) / len(d))
        got = alignment(cands, targets, gzip_sizes(targets, level), level)
        np.testing.assert_allclose(got, brute, rtol=0, atol=1e-12)


def test_candidate_goes_first_in_the_concatenation(texts):
    x, y = texts[8], texts[20]
    got = alignment([x], [y], gzip_sizes([y], 1), 1)[0]
    cx, cy = len(gzip.compress(x, 1)), len(gzip.compress(y, 1))
    first = 1 - (len(gzip.compress(x + y, 1)) - min(cx, cy)) / max(cx, cy)
    second = 1 - (len(gzip.compress(y + x, 1)) - min(cx, cy)) / max(cx, cy)
    assert got == pytest.approx(first) and first != second


def test_isal_backend_is_near_but_not_claimed_exact(texts):
    pytest.importorskip("isal")
    cands, targets = texts[6:26], texts[26:34] or texts[:4]
    exact = alignment(cands, targets, gzip_sizes(targets, 1), 1)
    fast = alignment(cands, targets, gzip_sizes(targets, 1, "isal"), 1, "isal")
    assert np.corrcoef(exact, fast)[0, 1] > 0.9


def test_dictionary_gain_prefers_text_like_the_targets(texts):
    pytest.importorskip("zstandard")
    files = stdlib_files()
    email = [c.encode() for rel, p in files if rel.startswith("email/") for c in chunk_lines(p.read_text())]
    other = [c.encode() for rel, p in files if rel.startswith("asyncio/") for c in chunk_lines(p.read_text())][:40]
    dictionary, kind = train_dictionary(email[0:80:2])
    held = email[1:80:2]
    gain = lambda xs: 1 - dictionary_sizes(xs, dictionary, kind) / gzip_sizes(xs, 1)  # noqa: E731
    assert kind == "trained" and gain(held).mean() > gain(other).mean()
