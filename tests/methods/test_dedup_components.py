"""The shared pieces of the dedup stages: connected components by shuffles against scipy on graphs with
long chains, the keep rule, shingles, exact Jaccard of lists, the banding choice."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

import curate
from curate.methods.dedup import Dedup
from curate.methods.dedup.components import GraphStage, keep_best
from curate.methods.dedup.minhash import jaccard_of_lists
from curate.methods.dedup.text import normalize, shingles, text_shingles
from kernels.minhash import candidate_probability, choose_bands
from testkit.helpers import shuffled_shards


class ListedKeys(GraphStage):
    """Rows sharing any value of their `keys` list are linked: any graph, to test the components."""

    type = "listed_keys"

    def __init__(self, partitions: int = 3, name: str | None = None):
        super().__init__(None, True, 0, partitions, name)

    @property
    def data_inputs(self):
        return ("keys",)

    def node_key(self):
        return {}

    def bucket_key(self):
        return {}

    def node_payload(self, table):
        keys = table.column("keys").combine_chunks()
        return {"sig": keys}, np.full(table.num_rows, None, object), None

    def bucket_keys(self, nodes):
        keys = nodes.column("sig").combine_chunks()
        return np.asarray(keys.flatten().to_numpy(), np.uint64).reshape(len(keys), 2)

    verifies = False  # every bucket collision is a duplicate

    def payload_key(self, nodes):
        return np.asarray(nodes.column("node").to_numpy(), np.uint64)  # all distinct

    def similarity(self, a, b):
        return np.ones(a.num_rows), np.ones(a.num_rows, bool)


def graph(n: int, seed: int):
    """Chains of up to 60 nodes in random node order, plus random extra links: (keys per node, edges)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    keys = np.full((n, 2), 0, np.uint64)
    keys[:, 0] = 10**9 + np.arange(n)  # a node's own key, shared with nobody by default
    keys[:, 1] = 2 * 10**9 + np.arange(n)
    edges = []
    start = 0
    while start < n:  # each chain: consecutive members share a key
        size = int(rng.integers(1, 60))
        chain = perm[start:start + size]
        for j in range(len(chain) - 1):
            keys[chain[j], j % 2] = keys[chain[j + 1], j % 2] = 3 * 10**9 + chain[j]  # same band
            edges.append((chain[j], chain[j + 1]))
        start += size
    return keys, edges


@pytest.mark.parametrize("seed, partitions", [(0, 1), (1, 3), (2, 7)])
def test_components_match_scipy_on_long_chains(tmp_path, seed, partitions):
    n = 900
    keys, edges = graph(n, seed)
    t = pa.table({"id": [f"n{i}" for i in range(n)],
                  "keys": pa.FixedSizeListArray.from_arrays(pa.array(keys.ravel(), pa.uint64()), 2)})
    data = shuffled_shards(tmp_path / "data", t, 5, seed=seed)
    stage = ListedKeys(partitions=partitions)
    pipe = curate.Pipeline(stages=[stage], policies=[Dedup(column="listed_keys.component")], id_column="id")
    summary = curate.run(pipe, data, tmp_path / "run", executor="local")
    rows = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    a, b = np.array(edges).T
    _, truth = connected_components(sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    got = np.array([rows[f"n{i}"]["listed_keys.component"] for i in range(n)])
    # the same partition of the nodes: a bijection between labels
    pairs = set(zip(truth.tolist(), got.tolist()))
    assert len(pairs) == len(set(truth.tolist())) == len(set(got.tolist()))
    assert summary["result"]["kept"] == len(set(truth.tolist()))
    assert summary["stages"]["listed_keys"]["artifact"]["cc_rounds"] >= 2


class Checked(ListedKeys):
    """Rows sharing a key are candidates; a pair is accepted only when both rows have the same `group`."""

    type = "checked_keys"
    verifies = True

    def node_payload(self, table):
        payload, errors, _ = super().node_payload(table)
        return {**payload, "group": table.column("group").combine_chunks()}, errors, None

    @property
    def data_inputs(self):
        return ("keys", "group")

    @property
    def payload(self):
        return ("sig", "group")

    def similarity(self, a, b):
        ok = np.asarray(a.column("group").to_numpy()) == np.asarray(b.column("group").to_numpy())
        return ok.astype(float), ok


def test_checked_pairs_compare_every_member_of_a_bucket_not_a_star(tmp_path):
    """Buckets of three (x, y, z) where only y~z is accepted: a star from the bucket's smallest node would
    lose y~z whenever x is the smallest; all pairs find it in every bucket."""
    n = 60
    ids, keys, group = [], [], []
    for t in range(n):
        for j, g in enumerate((f"x{t}", f"yz{t}", f"yz{t}")):
            ids.append(f"{t}-{j}")
            keys.append([7 * 10**9 + t, 10**9 + 3 * t + j])  # band 0 shared by the three, band 1 private
            group.append(g)
    table = pa.table({"id": ids, "keys": pa.FixedSizeListArray.from_arrays(pa.array(np.ravel(keys), pa.uint64()), 2),
                      "group": group})
    pipe = curate.Pipeline(stages=[Checked(partitions=2)], policies=[Dedup(column="checked_keys.component")],
                           id_column="id")
    curate.run(pipe, shuffled_shards(tmp_path / "data", table, 3, seed=0), tmp_path / "run", executor="local")
    rows = {r["id"]: r for r in curate.load_manifest(tmp_path / "run").to_pylist()}
    c = "checked_keys.component"
    assert all(rows[f"{t}-1"][c] == rows[f"{t}-2"][c] != rows[f"{t}-0"][c] for t in range(n))
    assert all(rows[f"{t}-0"]["checked_keys.size"] == 1 for t in range(n))


def test_no_duplicates_at_all_keeps_every_row(tmp_path):
    n = 50
    keys = np.arange(2 * n, dtype=np.uint64)
    t = pa.table({"id": [f"n{i}" for i in range(n)],
                  "keys": pa.FixedSizeListArray.from_arrays(pa.array(keys, pa.uint64()), 2)})
    pipe = curate.Pipeline(stages=[ListedKeys(partitions=4)], policies=[Dedup(column="listed_keys.component")],
                           id_column="id")
    summary = curate.run(pipe, shuffled_shards(tmp_path / "data", t, 3, seed=0), tmp_path / "run", executor="local")
    assert summary["result"]["kept"] == n and summary["stages"]["listed_keys"]["artifact"]["accepted_pairs"] == 0


def test_keep_best_takes_the_smallest_rank_then_tie():
    label = np.array([5, 5, 5, 9, 9, 1], np.uint64)
    rank = np.array([3, 1, 1, 0, 0, 7], np.uint64)
    tie = np.array([0, 9, 4, 2, 1, 0], np.uint64)
    best, size = keep_best(label, rank, tie, np.arange(6, dtype=np.uint64))
    assert best.tolist() == [2, 2, 2, 4, 4, 5] and size.tolist() == [3, 3, 3, 2, 2, 1]


def test_word_and_char_shingles_are_sets_of_ngrams():
    texts = pa.array(["a b c a b c", "a b c", "x", "", None, "ab", "abab"])
    h, off = shingles(texts, "word", 2)
    rows = [set(h[off[i]:off[i + 1]].tolist()) for i in range(len(texts))]
    assert len(rows[0]) == 3 and rows[1] < rows[0] and len(rows[2]) == 1  # ab, bc, ca; a short text: one
    assert rows[3] == rows[4] == set()
    h, off = shingles(texts, "char", 2)
    rows = [set(h[off[i]:off[i + 1]].tolist()) for i in range(len(texts))]
    assert rows[5] < rows[6] and len(rows[6]) == 2  # ab, ba


def test_normalisations():
    t = pa.array(["  Ｈello,\tWORLD!  ", None])
    assert normalize(t, "none").to_pylist() == t.to_pylist()
    assert normalize(t, "whitespace_case").to_pylist() == ["ｈello, world!", None]
    assert normalize(t, "nfkc_punct").to_pylist() == ["hello world", None]


def test_jaccard_of_lists_matches_python_sets():
    rng = np.random.default_rng(0)
    a = [sorted(set(rng.integers(0, 50, rng.integers(0, 30)).tolist())) for _ in range(200)]
    b = [sorted(set(rng.integers(0, 50, rng.integers(1, 30)).tolist())) for _ in range(200)]
    got = jaccard_of_lists(pa.array(a, pa.list_(pa.uint64())), pa.array(b, pa.list_(pa.uint64())))
    want = [len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(a, b)]
    np.testing.assert_allclose(got, want)


@pytest.mark.parametrize("n_hash, t, fn", [(112, 0.8, 0.05), (128, 0.7, 0.01), (64, 0.9, 0.1)])
def test_banding_meets_the_false_negative_target(n_hash, t, fn):
    bands, rows = choose_bands(n_hash, t, fn)
    assert bands * rows <= n_hash
    assert 1 - candidate_probability(t, bands, rows) <= fn
    # no other banding meeting the target lets fewer pairs far below the threshold through
    assert all(candidate_probability(t / 2, bands, rows) <= candidate_probability(t / 2, n_hash // r, r) + 1e-9
               for r in range(1, n_hash + 1) if 1 - candidate_probability(t, n_hash // r, r) <= fn)


@pytest.mark.parametrize("how", ["whitespace_case", "nfkc_punct"])
def test_ascii_rows_normalised_in_the_kernel_give_the_regex_words(how):
    texts = pa.array(["Hello, World! x=1; y_2 (TEST)", "tabs\tand\nnew\x0blines\x0c ok", "ÉTÉ, déjà-vu!", None, "...",
                      "a-b c'd [e] {f} ~g~ `h` |i| \\j/ @k# $l% ^m& *n+ <o> ?p! \"q\""])
    want = shingles(normalize(texts, how), "word", 2)
    got = text_shingles(texts, how, "word", 2)
    assert [a.tolist() for a in got] == [a.tolist() for a in want]


def test_the_refused_pairs_recorded_are_the_most_similar_whatever_the_partitions():
    import json

    from curate.methods.dedup.pairs import NEAR_MISSES, near_misses, top_near_misses

    rng = np.random.default_rng(4)
    n = 500
    a, b = rng.integers(1, 2**63, n, dtype=np.uint64), rng.integers(1, 2**63, n, dtype=np.uint64)
    sim = rng.choice([0.5, 0.7, 0.75, 0.79, 0.85], n)  # ties, and accepted pairs above 0.8
    ok = sim >= 0.8
    whole = near_misses(a, b, sim, ok)
    assert len(whole) == NEAR_MISSES and all(not s >= 0.8 for _, _, s in whole)
    assert [s for _, _, s in whole] == sorted((s for s in sim[~ok]), reverse=True)[:NEAR_MISSES]
    for parts in (2, 7):
        cut = np.array_split(np.arange(n), parts)
        meta = [{b"dedup.near_misses": json.dumps(near_misses(a[i], b[i], sim[i], ok[i])).encode()} for i in cut]
        assert top_near_misses(meta) == sorted(whole, key=lambda m: (-m[2], int(m[0]), int(m[1])))
    assert top_near_misses([{b"dedup.counts": b"{}"}]) is None  # a step reused from before they were recorded
