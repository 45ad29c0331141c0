"""MinHash LSH as an optional second source of blocking candidates (curate.methods.autofj.minhash)."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

import curate
from curate.methods.autofj.blocking import BlockingIndex
from curate.methods.autofj.minhash import (
    LSHIndex,
    LSHParams,
    band_keys,
    lsh_keys,
    signatures,
)
from curate.methods.autofj.stage import AutoFJ


def sets(rows: list[list[int]], width: int = 10_000) -> sp.csr_matrix:
    indptr = np.cumsum([0] + [len(r) for r in rows])
    idx = np.concatenate([np.array(r, np.int64) for r in rows]) if indptr[-1] else np.zeros(0, np.int64)
    return sp.csr_matrix((np.ones(len(idx)), idx, indptr), shape=(len(rows), width))


def test_signature_agreement_estimates_jaccard():
    # |a ∩ b| = 50, |a ∪ b| = 150: J = 1/3
    m = sets([list(range(100)), list(range(50, 150)), list(range(100))])
    sig, has = signatures(m, 2048, seed=3)
    assert has.all() and sig.shape == (3, 2048) and sig.max() < 2**32
    assert abs((sig[0] == sig[1]).mean() - 1 / 3) < 0.04
    assert (sig[0] == sig[2]).all()  # equal sets, equal signatures


def test_signatures_skip_empty_rows_and_blocks_do_not_change_keys():
    # (the signature kernel against a plain numpy form: tests/kernels/test_minhash.py)
    rng = np.random.default_rng(0)
    m = sets([list(rng.choice(5000, rng.integers(0, 40), replace=False)) for _ in range(300)])
    whole, has = signatures(m, 64)
    assert has.sum() < 300 and len(whole) == has.sum()  # some rows are empty and get no signature
    keys, has3 = lsh_keys(m, LSHParams(bands=8, rows=8))
    blocked, _ = lsh_keys(m, LSHParams(bands=8, rows=8), block=7)  # signatures hashed 7 rows at a time
    assert (has3 == has).all() and (keys == band_keys(whole, 8, 8)).all() and (blocked == keys).all()


def test_collision_rate_follows_the_s_curve():
    rng = np.random.default_rng(1)
    params = LSHParams(bands=20, rows=5)
    hi, lo = [], []
    for i in range(200):
        base = list(rng.choice(10**6, 40, replace=False) + 10**6 * i)
        hi.append((base, base[:36] + [7 * 10**8 + i * 10 + j for j in range(4)]))  # J = 36/44 ≈ 0.82
        lo.append((base, base[:7] + [8 * 10**8 + i * 100 + j for j in range(33)]))  # J = 7/73 ≈ 0.10
    for pairs, expect in ((hi, "collide"), (lo, "apart")):
        left = sets([a for a, _ in pairs], 10**9)
        index = LSHIndex.build(left, params)
        q, c = index.candidates(sets([b for _, b in pairs], 10**9))
        rate = np.mean([(i, i) in set(zip(q.tolist(), c.tolist())) for i in range(len(pairs))])
        # 1 - (1 - J^5)^20: 0.9999 at J = 0.82, 0.0002 at J = 0.10
        assert rate >= 0.98 if expect == "collide" else rate <= 0.03


def test_a_crowded_bucket_is_skipped_and_counted():
    left = sets([[1, 2, 3, 4]] * 5 + [[9, 10, 11]])
    crowded = LSHIndex.build(left, LSHParams(bands=4, rows=2, max_bucket=2))
    q, c = crowded.candidates(sets([[1, 2, 3, 4], [9, 10, 11], []]))
    assert list(zip(q.tolist(), c.tolist())) == [(1, 5)]  # the five equal rows fill every bucket of query 0
    assert crowded.skipped_buckets == 4  # one per band
    roomy = LSHIndex.build(left, LSHParams(bands=4, rows=2, max_bucket=5))
    q, c = roomy.candidates(sets([[1, 2, 3, 4]]))
    assert c.tolist() == [0, 1, 2, 3, 4] and roomy.skipped_buckets == 0


def test_band_keys_differ_when_any_row_of_the_band_differs():
    sig = np.array([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4]], np.uint64)
    keys = band_keys(sig, bands=2, rows=2)
    assert keys[0, 0] == keys[1, 0] == keys[2, 0]  # band 0: columns 0 and 1
    assert keys[0, 1] != keys[1, 1] and keys[0, 1] == keys[2, 1]


def test_lsh_adds_the_high_overlap_row_that_the_top_k_leaves_out():
    # TF-IDF averages idf over an L row's tokens, so the short rare row outranks the exact match at k = 1
    filler = [f"the company number {w}" for w in "one two three four five six seven eight nine ten".split()]
    left = filler + ["zyxwv the company number", "zyxwv"]
    query = ["zyxwv the company number"]
    q, c = BlockingIndex.build(left, k=1, budget="exact").candidates(query)
    assert [left[i] for i in c] == ["zyxwv"]
    with_lsh = BlockingIndex.build(left, k=1, budget="exact", lsh=LSHParams())
    q, c = with_lsh.candidates(query)
    assert "zyxwv the company number" in [left[i] for i in c] and "zyxwv" in [left[i] for i in c]
    assert (np.diff(q) >= 0).all() and len(set(zip(q.tolist(), c.tolist()))) == len(q)  # sorted, unique


def test_lsh_options_parse_and_fail_clearly():
    assert LSHParams.parse(False) is None and LSHParams.parse(None) is None
    assert LSHParams.parse(True) == LSHParams()
    assert LSHParams.parse({"bands": 8, "rows": 2}).as_dict() == {"bands": 8, "rows": 2, "max_bucket": 100, "seed": 0}
    for bad, msg in (({"bands": 0}, "bands"), ({"width": 3}, "unknown"), ("yes", "minhash_lsh"),
                     ({"rows": 2.5}, "rows")):
        with pytest.raises(ValueError, match=msg):
            LSHParams.parse(bad)


def test_minhash_lsh_runs_through_the_stage_and_is_recorded(tmp_path):
    from curate.data.autofj_synth import build
    from curate.errors import ConfigError

    build(tmp_path / "synth", 2000, 400, shards=2)
    stage = AutoFJ(reference=str(tmp_path / "synth" / "left.parquet"), on="name",
                   minhash_lsh={"bands": 16, "rows": 4})
    s = curate.run(curate.Pipeline([stage], id_column="id"), tmp_path / "synth" / "right", tmp_path / "run", executor="local")
    prog = s["stages"]["autofj"]["artifact"]["program"]
    assert prog["minhash_lsh"] == {"bands": 16, "rows": 4, "max_bucket": 100, "seed": 0}
    art = s["stages"]["autofj"]["artifact"]
    assert art["search_rows"] == 400 and isinstance(art["lsh_skipped_buckets"], int)  # None when LSH is off
    m = curate.load_manifest(tmp_path / "run")
    truth = dict(zip(*[pq.read_table(tmp_path / "synth" / "right").column(c).to_pylist() for c in ("id", "true_id")]))
    pred = [(r, l) for r, l in zip(m.column("id").to_pylist(), m.column("autofj.match_id").to_pylist()) if l]
    assert len(pred) > 250 and np.mean([truth[r] == l for r, l in pred]) > 0.85
    with pytest.raises(ConfigError, match="minhash_lsh"):
        AutoFJ(reference="x", on="name", minhash_lsh="lots")
    with pytest.raises(ConfigError, match="reference"):
        AutoFJ(reference="x", on="name", minhash_lsh=True, mode="reference")
