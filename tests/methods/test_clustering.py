"""The shared clustering fit: the uniform sample's bound is exact and independent of sharding."""
from __future__ import annotations

import numpy as np

from curate.methods.clustering import sample_bound


def test_sample_bound_is_the_exact_size_th_smallest_key_for_any_cut():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**64 - 1, 50_000, dtype=np.uint64, endpoint=True)
    want = np.sort(keys)
    for cuts in ([50_000], [10, 20_000, 29_990], [1] * 10 + [49_990]):
        shards = np.split(keys, np.cumsum(cuts)[:-1])
        for size in (1, 256, 12_345, 49_999, 50_000):
            assert sample_bound(lambda: iter(shards), size, len(keys)) == (2**64 - 1 if size == 50_000 else want[size - 1])  # noqa: B023


def test_sample_bound_widens_when_the_keys_are_not_spread_as_expected():
    keys = np.arange(2**63, 2**63 + 1000, dtype=np.uint64)  # all far above the first guess
    assert sample_bound(lambda: iter([keys[:400], keys[400:]]), 10, 1000) == keys[9]
