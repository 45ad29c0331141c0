"""The shared clustering fit: the uniform sample's bound is exact and independent of sharding."""
from __future__ import annotations

import numpy as np
import pytest

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


def _shards_with_bad_rows(rng, n_shards=3, rows=3000, d=8):
    import pyarrow as pa

    from curate.stage import ROW_HASH

    shards = []
    for _ in range(n_shards):
        v = rng.standard_normal((rows, d)).astype(np.float16)
        v[::97] = 0                      # zero vectors: invalid
        v[5::89, 2] = np.nan             # NaN: invalid
        h = rng.integers(0, 2**63, rows).astype(np.uint64)
        h[1::50] = h[0::50][: len(h[1::50])]  # repeated ids: equal tie keys, different vectors
        emb = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1), pa.float16()), d)
        mask = np.zeros(rows, bool)
        mask[7::101] = True              # null rows
        shards.append(pa.table({"emb": pa.array(emb.to_pylist(), emb.type, mask=mask), ROW_HASH: h}))
    return shards


def test_first_pass_sample_rows_are_the_second_pass_rows_bit_for_bit(monkeypatch):
    """When the sample's bound is under AHEAD the fit takes the sample from the first pass: the k-means must get
    the very rows, in the very order and with the very bits, that the second pass would give it."""
    from curate.methods import clustering
    from curate.methods.semdedup import SemDeDup
    from curate.stage import TablesFitContext

    shards = _shards_with_bad_rows(np.random.default_rng(1))
    seen, calls = {}, []

    class Counting(TablesFitContext):
        def map(self, fn, columns):
            calls.append(getattr(fn, "func", fn).__name__)
            return super().map(fn, columns)

    def fake_kmeans(x, k, niter, seed, spherical=True):
        seen[clustering.AHEAD] = x.copy()
        return x[:k]

    monkeypatch.setattr(clustering, "fit_kmeans", fake_kmeans)
    for ahead in (clustering.AHEAD, 0):  # 0: the bound is never under it, the second pass always runs
        monkeypatch.setattr(clustering, "AHEAD", ahead)
        calls.clear()
        SemDeDup("emb", k=3, fit_points_per_centroid=40).fit_centroids(Counting(shards))
        assert ("_sample_rows_packed" in calls) == (ahead == 0)
    one, two = seen.values()
    assert len(one) == 120 and one.view(np.uint16).tobytes() == two.view(np.uint16).tobytes()


def test_first_pass_refuses_keys_that_disagree_with_the_sample_rows():
    from curate.methods.semdedup import SemDeDup

    shard = _shards_with_bad_rows(np.random.default_rng(2), n_shards=1)[0]
    stage = SemDeDup("emb", k=3)
    stage.in_pool = lambda t: np.arange(t.num_rows) % 2 == 0 if t.num_rows == shard.num_rows else np.ones(t.num_rows, bool)
    with pytest.raises(RuntimeError, match="differ"):
        stage._sample_keys_and_rows(shard)
