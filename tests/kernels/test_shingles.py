"""kernels/shingles.py: word n-gram hashes against their definition written in plain Python."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from kernels.minhash import mix
from kernels.shingles import word_ngrams

M64 = (1 << 64) - 1


def fnv(word: bytes) -> int:
    h = 0xCBF29CE484222325
    for c in word:
        h = ((h ^ c) * 0x100000001B3) & M64
    return h


def m(v: int) -> int:
    return int(mix(np.array([v], np.uint64))[0])


def reference(text: str | None, n: int) -> list[int]:
    if text is None:
        return []
    words = [m(fnv(w.encode())) for w in text.split()]
    size = min(len(words), n)
    out = []
    for s in range(max(len(words) - n + 1, 1) if words else 0):
        g = m(size)
        for j in range(size):
            g = m(g ^ words[s + j])
        out.append(g)
    return out


def test_word_ngrams_match_the_python_definition():
    texts = ["a b c d e f", "  lead\tand\ntrail  ", "one", "", None, "x y", "héllo wörld ünïcode text here now"]
    for n in (1, 2, 5):
        h, off = word_ngrams(pa.array(texts, pa.string()).slice(0), n)
        got = [h[off[i]:off[i + 1]].tolist() for i in range(len(texts))]
        assert got == [reference(t, n) for t in texts]


def test_sliced_arrays_read_their_own_rows():
    arr = pa.array(["p q r", "s t u", "v w x"])
    h, off = word_ngrams(arr.slice(1, 2), 2)
    assert h[off[0]:off[1]].tolist() == reference("s t u", 2) and len(off) == 3
