"""DBP (concept-cluster complexity pruning) on the spec's synthetic groups, and its allocation."""
from __future__ import annotations

import numpy as np
import pytest

import curate
from curate.errors import ConfigError
from curate.methods.dbp.policy import ClusterQuota, allocate
from curate.methods.dbp.stage import DBP, inter_cluster_distance
from curate.methods.semdedup.policy import SemDeDupPolicy
from curate.methods.semdedup.stage import SemDeDup
from testkit.helpers import shuffled_shards, spherical_groups, vector_table

KEEP = 2564  # 30% of the spec's deduplicated pool


def pipeline(**policy):
    return curate.Pipeline(
        stages=[SemDeDup("emb", k=4, niter=20), DBP("emb", k=4, l=2, dedup_epsilon=0.002, niter=20)],
        policies=[SemDeDupPolicy(epsilon=0.002), ClusterQuota(**{"k": KEEP, "tau": 0.1, **policy})], id_column="id")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    ids, x, labels, _ = spherical_groups()
    root = tmp_path_factory.mktemp("dbp")
    data = shuffled_shards(root / "data", vector_table(ids, x), 4, seed=2)
    summary = curate.run(pipeline(), data, root / "run", executor="local")
    m = curate.load_manifest(root / "run").to_pylist()
    return root, summary, m, dict(zip(ids, labels))


def test_quotas_sum_to_the_budget_and_the_complex_cluster_gets_the_largest_share(run):
    _, summary, rows, label = run
    pol = summary["policies"]["dbp"]
    assert pol["kept"] == KEEP == sum(c["q"] for c in pol["clusters"])
    kept_frac = {}
    for name in "ABMC":
        pool = [r for r in rows if label[r["id"]] == name and r["dbp.in_pool"]]
        kept_frac[name] = sum(r["keep.dbp"] for r in pool) / len(pool)
    assert kept_frac["C"] == max(kept_frac.values()) and kept_frac["C"] > 0.9
    assert max(kept_frac["A"], kept_frac["B"]) < kept_frac["M"] < kept_frac["C"]


def test_inside_each_cluster_the_kept_rows_are_the_farthest(run):
    _, _, rows, _ = run
    for c in {r["dbp.cluster"] for r in rows}:
        pool = [r for r in rows if r["dbp.cluster"] == c and r["dbp.in_pool"]]
        kept = [r["dbp.dist"] for r in pool if r["keep.dbp"]]
        dropped = [r["dbp.dist"] for r in pool if not r["keep.dbp"]]
        if kept and dropped:
            assert min(kept) >= max(dropped)


def test_rows_outside_the_pool_are_never_kept_and_dropped_by_dedup_first(run):
    _, _, rows, _ = run
    outside = [r for r in rows if not r["dbp.in_pool"]]
    assert outside and not any(r["keep.dbp"] or r["keep"] for r in outside)
    assert all(r["drop_reason"].startswith("near-duplicate of") for r in outside)


def test_other_tau_or_budget_reruns_only_the_policy(run):
    root, summary, _, _ = run
    again = curate.run(pipeline(tau=0.5, k=3000), root / "data", root / "run", executor="local")
    assert all(s["units_computed"] == 0 for s in again["stages"].values())
    assert again["policies"]["dbp"]["kept"] == 3000


def pool_of(sizes, spreads, seed=0):
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    dist = np.concatenate([rng.uniform(0, 2 * s, n) for n, s in zip(sizes, spreads)])
    return cluster, dist


def test_tau_limits_saturate_then_split_equally_or_approach_even():
    cluster, dist = pool_of([2780, 2778, 2003, 988], [0.0074, 0.0087, 0.0269, 0.3457])
    d_inter = np.array([0.616, 0.562, 0.978, 1.131])[cluster]
    cold = allocate(cluster, dist, d_inter, KEEP, tau=1e-3)
    assert cold["q"][3] == 988 and np.ptp(cold["q"][:3]) <= 1  # C saturates, the rest split equally
    hot = allocate(cluster, dist, d_inter, KEEP, tau=1e3)
    assert np.abs(hot["q"] - KEEP / 4).max() <= 2


def test_widening_a_cluster_never_lowers_its_quota():
    base = [0.01, 0.02, 0.05, 0.1]
    last = 0
    for spread in (0.01, 0.03, 0.06, 0.1, 0.2, 0.4):
        cluster, dist = pool_of([900, 900, 900, 900], [spread, *base[1:]], seed=1)
        q = allocate(cluster, dist, np.full(len(cluster), 0.8), 1000, tau=0.1)["q"][0]
        assert q >= last
        last = q


def test_empty_clusters_get_nothing_and_impossible_bounds_fail_clearly():
    cluster = np.array([0] * 50 + [3] * 30 + [5] * 2)  # clusters 1, 2, 4 are empty
    out = allocate(cluster, np.linspace(0, 1, 82), np.full(82, 0.5), 40, tau=0.1)
    assert out["cluster"].tolist() == [0, 3, 5] and out["q"].sum() == 40
    with pytest.raises(ConfigError, match="no allocation"):
        allocate(np.repeat(np.arange(10), 20), np.ones(200), np.ones(200), 5, tau=0.1)  # 10 clusters, lb 1 each
    with pytest.raises(ConfigError, match="more than the"):
        allocate(cluster, np.ones(82), np.ones(82), 83, tau=0.1)


def test_d_inter_averages_the_l_nearest_other_centroids():
    c = np.array([[1, 0], [0, 1], [-1, 0], [np.sqrt(0.5), np.sqrt(0.5)]], np.float32)
    d = inter_cluster_distance(c, 2)
    np.testing.assert_allclose(d[0], np.mean([1 - np.sqrt(0.5), 1.0]), atol=1e-6)
    assert inter_cluster_distance(c[:1], 20).tolist() == [0.0]


def test_paper_values_are_the_defaults_and_the_reference_preset_is_available():
    paper, ref = ClusterQuota(fraction=0.3), ClusterQuota(fraction=0.3, preset="reference")
    assert (paper._tau, paper._balance) == (0.1, 0.0) and (ref._tau, ref._balance) == (0.5, 0.5)
    assert (paper.tau, paper.balance) == (None, None) and repr(paper) == "ClusterQuota(fraction=0.3)"
    assert ClusterQuota(fraction=0.3, tau=0.2, preset="reference")._tau == 0.2
    big = 10**9  # no pool-size cap
    assert DBP("e").choose_k(big) == 500 == DBP("e", k="auto").choose_k(big)
    assert DBP("e", preset="reference").choose_k(big) == 10_000 and DBP("e", k=7).choose_k(big) == 7
    with pytest.raises(ConfigError, match="parameter 'preset' is 'laion'"):
        ClusterQuota(fraction=0.3, preset="laion")
    with pytest.raises(ConfigError, match="exactly one of fraction and k"):
        ClusterQuota(fraction=0.3, k=10)
