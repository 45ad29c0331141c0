"""Duplicate groups at scale, shared by the three dedup stages: candidate pairs from buckets, their
similarity, connected components, and the keep rule. Every step is a shuffle through the run
directory (`FitContext.shuffle`, later steps reading earlier ones with `source=`), so each worker holds
one partition and a crash resumes at the last finished unit.

Nodes are rows, named by their 64-bit id hash (the engine's `ROW_HASH`; the `nodes` step refuses two
ids with one hash). Steps, each a shuffle:
  nodes      per shard: a node record per row (id, keep preference, the stage's payload: signature...)
  buckets, join_a, join_b    candidate pairs and their similarity (pairs.py)
  cc<i>l/s   connected components: alternating large-star and small-star rounds (Kiveris et al., SoCC
             2014, "Connected Components in MapReduce and Beyond") until the edge set stops changing;
             then every node links to its component's smallest node
  labels     each node's component (smallest node) and its best accepted similarity
  keep       per component: the best row (keep value, then tie key) is kept; the others are `dup_of` it
Exact dedup runs `nodes` with its content hash as the component and goes straight to `keep`.
"""
from __future__ import annotations

import json
import math
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.methods.dedup.pairs import (
    CandidatePairs,
    edge_table,
    present,
    top_near_misses,
    u64,
    u64_of,
    unique_pairs,
    values_of,
)
from curate.methods.dedup.presentation import DedupPresenter
from curate.policy import order_keys, tie_keys
from curate.stage import ROW_HASH, ROW_ID, ROW_INDEX, FitContext, ScoresFromShuffle, Shuffled, Stage
from kernels.hashing import mix64, partition_of

META_OUTPUTS = b"dedup.outputs"
META_INFO = b"dedup.info"
MAX_ROUNDS = 64

KeepBy = Annotated[str | None, Field(description="keep the row with the best value of this column in each group "
                                                 "(a data column or an earlier stage's, like `icc.score`; "
                                                 "`length`: the longest); default: the smallest tie key")]
KeepLargest = Annotated[bool, Field(description="with keep_by: keep the largest value (else the smallest)")]
Seed = Annotated[int, Field(description="tie-break seed (which copy is kept when keep values tie); minhash_dedup: also its hash functions")]
Partitions = Annotated[int | Literal["auto"], Field(description="shuffle partitions (auto: about 50,000 rows each)")]


def _fingerprint(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(count, order-free hash) of a set of distinct edges: equal sets, equal fingerprints."""
    with np.errstate(over="ignore"):
        return len(a), int(mix64(mix64(a) ^ b).sum(dtype=np.uint64))


def keep_best(label: np.ndarray, rank: np.ndarray, tie: np.ndarray, node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The keep rule: for each row, the index of its group's best row (smallest (rank, tie, node)) and the
    group's size. `rank` orders keep values (smaller is better; `policy.order_keys`), `tie` breaks ties."""
    order = np.lexsort((node, tie, rank, label))
    lab = label[order]
    start = np.r_[True, lab[1:] != lab[:-1]]
    group = np.cumsum(start) - 1
    firsts = order[start]
    best = np.empty(len(label), np.int64)
    best[order] = firsts[group]
    sizes = np.diff(np.r_[np.flatnonzero(start), len(lab)])
    size = np.empty(len(label), np.int64)
    size[order] = sizes[group]
    return best, size


class GraphStage(ScoresFromShuffle, CandidatePairs, Stage):
    """A dedup stage: rows -> node records with a payload; subclasses say how rows are bucketed and compared."""

    version = "1"
    unkeyed = frozenset({"partitions"})
    outputs_key = META_OUTPUTS  # the artifact metadata naming the reduce outputs (ScoresFromShuffle)
    match: ClassVar[str] = "near"            # `exact` or `near`, in the `match` column of removed rows
    similarity_name: ClassVar[str | None] = None   # the column holding each row's best similarity
    similarity_type: ClassVar[pa.DataType] = pa.float32()
    similarity_is_distance: ClassVar[bool] = False  # the column holds a distance: smaller is more similar
    presenter = DedupPresenter()

    def __init__(self, keep_by: str | None, keep_largest: bool, seed: int, partitions: int | str, name: str | None):
        super().__init__(name)
        self.keep_by, self.keep_largest, self.seed, self.partitions = keep_by, keep_largest, seed, partitions
        self._parts = 1
        self._info: dict[str, Any] = {}

    # --- what a subclass provides -----------------------------------------------------------------
    @property
    def payload(self) -> tuple[str, ...]:
        """The node-record columns that `bucket_keys` and `similarity` read."""
        return ("sig",)

    def bucket_key(self) -> dict[str, Any]:
        """What the candidate pairs depend on beyond the node records (the banding, the radius)."""
        raise NotImplementedError

    @property
    def verifies(self) -> bool:
        """Whether `similarity` may refuse a candidate pair (then buckets give all pairs, not stars)."""
        return True

    def payload_key(self, nodes: pa.Table) -> np.ndarray:
        """A uint64 per valid node record, equal for identical payloads (they link without comparing
        every pair: exact copies in a bucket cost linear, not quadratic, work)."""
        raise NotImplementedError

    def similarity_column(self, sim: np.ndarray) -> np.ndarray:
        """The stored similarity column from the internal one (larger is more similar)."""
        return sim

    @property
    def similarity_cut(self) -> float | None:
        """The similarity (or distance) a pair needs to be merged, as the similarity column holds it."""
        return None

    @property
    def similarity_estimated(self) -> bool:
        """Whether the similarity column holds an estimate (MinHash without verify), not the true value."""
        return False

    def pair_similarity(self, a: pa.Array, b: pa.Array) -> np.ndarray | None:
        """The true similarity of paired rows from their `data_inputs[0]` values (the report checks what a
        chain of links merged); None where the stage cannot tell from the values alone."""
        return None

    @property
    def data_inputs(self) -> tuple[str, ...]:
        raise NotImplementedError

    def node_payload(self, table: pa.Table) -> tuple[dict[str, pa.Array], np.ndarray, np.ndarray | None]:
        """(payload columns, per-row error (object array of str | None), length for keep_by=length)."""
        raise NotImplementedError

    def node_key(self) -> dict[str, Any]:
        """The parameters the node records depend on (a change of any other keeps them)."""
        raise NotImplementedError

    def bucket_keys(self, nodes: pa.Table) -> np.ndarray:
        """(rows x bands) uint64 keys of valid node records: rows sharing a key in a band are candidates."""
        raise NotImplementedError

    def similarity(self, a: pa.Table, b: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(similarity float64, accepted bool) of candidate pairs, from the payloads of both ends."""
        raise NotImplementedError

    # --- declarations -----------------------------------------------------------------------------
    @property
    def not_scores(self) -> frozenset[str]:
        """The similarity to a linked row is no score to keep rows by (the report draws no sweep for it)."""
        return frozenset({self.similarity_name} if self.similarity_name else ())

    @property
    def inputs(self) -> tuple[str, ...]:
        extra = (self.keep_by,) if self.keep_by not in (None, "length") else ()
        return (*self.data_inputs, *extra, ROW_ID, ROW_HASH, ROW_INDEX)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        out = {"component": pa.int64(), "size": pa.int32(), "dup_of": pa.string(), "match": pa.string()}
        if self.similarity_name:
            out[self.similarity_name] = self.similarity_type
        return out

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        if column == self.keep_by and not (pa.types.is_integer(type) or pa.types.is_floating(type)):
            return f"is {type}; keep_by needs a number column"
        return None

    # --- fit ------------------------------------------------------------------------------------------
    def _choose_partitions(self, ctx: FitContext) -> int:
        if self.partitions != "auto":
            return int(self.partitions)
        rows = sum(t.column("n")[0].as_py() for t in ctx.map(_count_rows, [ROW_INDEX]))
        return max(1, math.ceil(rows / 50_000))

    def fit(self, ctx: FitContext) -> pa.Table:
        self._parts = self._choose_partitions(ctx)
        self._node_key = {**self.node_key(), "keep_by": self.keep_by, "keep_largest": self.keep_largest,
                          "seed": self.seed}
        nodes = ctx.shuffle(self._node_map, list(self.inputs), self._parts, self._pass, name="nodes",
                            key=self._node_key)
        self._check_collisions(nodes)
        groups = self.groups(ctx, nodes)
        self._info["partitions"] = self._parts
        return pa.table({"output": groups.outputs}).replace_schema_metadata(
            {META_OUTPUTS: json.dumps(groups.outputs).encode(), META_INFO: json.dumps(self._info).encode()})

    def groups(self, ctx: FitContext, nodes: Shuffled) -> Shuffled:
        """The keep step's outputs: near-duplicate graph, components, keep rule."""
        # candidates depend on the banding, not on a threshold: with bands and rows given, a new
        # threshold re-checks only the candidate pairs (join_b on)
        key = {**self._node_key, **self.bucket_key()}
        buckets = ctx.shuffle(self._bucket_map, [], self._parts, self._bucket_reduce, name="buckets", source=[nodes],
                              key=key)
        join_a = ctx.shuffle(self._join_a_map, [], self._parts, self._join_a_reduce, name="join_a",
                             source=[nodes, buckets], key=key)
        pairs = ctx.shuffle(self._join_b_map, [], self._parts, self._join_b_reduce, name="join_b",
                            source=[nodes, join_a])
        self._info.update(self._sum_meta(pairs, ("candidate_pairs", "accepted_pairs")))
        self._info.update(self._sum_meta(buckets, ("wide_buckets",)))
        misses = top_near_misses(pairs.metadata) if self.verifies else None  # unverified: none refused
        if misses is not None:
            shown = self.similarity_column  # as the stage's column holds it (a distance for image_hash)
            self._info["near_misses"] = [[a, b, float(shown(np.array([s]))[0])] for a, b, s in misses]
        stars = self.components(ctx, pairs)
        labels = ctx.shuffle(self._label_map, [], self._parts, self._label_reduce, name="labels",
                             source=[nodes, pairs, stars])
        return ctx.shuffle(self._keep_map, [], self._parts, self._keep_reduce, name="keep", source=[labels])

    def components(self, ctx: FitContext, pairs: Shuffled) -> Shuffled:
        """Large-star / small-star rounds until the edge set stops changing (Kiveris et al. 2014)."""
        edges, last = pairs, None
        for i in range(MAX_ROUNDS):
            large = ctx.shuffle(self._large_map, [], self._parts, self._large_reduce, name=f"cc{i}l", source=[edges])
            edges = ctx.shuffle(self._small_map, [], self._parts, self._small_reduce, name=f"cc{i}s", source=[large])
            fp = self._sum_meta(edges, ("edges", "fingerprint"))
            if fp == last:
                self._info["cc_rounds"] = i + 1
                return edges
            last = fp
        raise RuntimeError(f"stage {self.name!r}: connected components did not converge in {MAX_ROUNDS} rounds")

    @staticmethod
    def _sum_meta(shuffled: Shuffled, keys: tuple[str, ...]) -> dict[str, int]:
        out = dict.fromkeys(keys, 0)
        for meta in shuffled.metadata:
            got = json.loads(meta.get(b"dedup.counts", b"{}"))
            for k in keys:
                out[k] = (out[k] + got.get(k, 0)) % (1 << 64) if k == "fingerprint" else out[k] + got.get(k, 0)
        return out

    def _check_collisions(self, nodes: Shuffled) -> None:
        bad = self._sum_meta(nodes, ("hash_collisions",))["hash_collisions"]
        if bad:
            examples = [e for m in nodes.metadata for e in json.loads(m.get(b"dedup.collisions", b"[]"))][:3]
            raise ValueError(f"stage {self.name!r}: {bad} pair(s) of distinct row ids share a 64-bit id hash "
                             f"(e.g. {examples}); rename one id of each pair")

    # --- nodes ----------------------------------------------------------------------------------------
    def keep_rank(self, table: pa.Table, length: np.ndarray | None) -> np.ndarray:
        """Keep preference as uint64 (smaller is better); rows with no value come last."""
        if self.keep_by is None:
            return np.zeros(table.num_rows, np.uint64)
        if self.keep_by == "length":
            values = np.asarray(length, np.float64)
        else:
            col = table.column(self.keep_by)
            values = np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), np.float64)
        rank = order_keys(np.nan_to_num(values, nan=0.0), self.keep_largest)
        return np.where(np.isnan(values), np.uint64(0xFFFFFFFFFFFFFFFF), rank)

    def _node_map(self, table: pa.Table) -> pa.Table:
        payload, errors, length = self.node_payload(table)
        node = u64(table.column(ROW_HASH))
        return pa.table({"part": pa.array(partition_of(node, self._parts)), "row": table.column(ROW_INDEX),
                         "node": pa.array(node, pa.uint64()), "id": table.column(ROW_ID),
                         "rank": pa.array(self.keep_rank(table, length), pa.uint64()),
                         "tie": pa.array(tie_keys(node, self.seed), pa.uint64()),
                         "error": pa.array(errors, pa.string()), **payload})

    def _pass(self, rows: pa.Table) -> pa.Table:
        """The node records, kept; checks that no two ids share a hash (they meet in this partition)."""
        node = u64(rows.column("node"))
        order = np.argsort(node, kind="stable")
        same = np.flatnonzero(node[order][1:] == node[order][:-1])
        ids = rows.column("id")
        examples = [[ids[int(order[i])].as_py(), ids[int(order[i + 1])].as_py()] for i in same[:3]]
        meta = {b"dedup.counts": json.dumps({"hash_collisions": len(same)}).encode(),
                b"dedup.collisions": json.dumps(examples).encode()}
        return rows.drop_columns(["part"]).replace_schema_metadata(meta)

    # --- connected components: large-star / small-star --------------------------------------------------
    @staticmethod
    def _endpoints(rows: pa.Table) -> tuple[np.ndarray, np.ndarray, pa.Array]:
        a, b = ("x", "y") if "x" in rows.column_names else ("u", "v")  # accepted pairs, or a round's edges
        return u64_of(rows, a), u64_of(rows, b), rows.column("shard").combine_chunks()

    def _large_map(self, rows: pa.Table) -> pa.Table:
        """Both directions of every edge, to the partition of its first node."""
        p, q, shard = self._endpoints(rows)
        keep = p != q
        x, y = np.r_[p[keep], q[keep]], np.r_[q[keep], p[keep]]
        return pa.table({"part": pa.array(partition_of(x, self._parts)), "row": pa.array(np.zeros(len(x), np.int64)),
                         "u": pa.array(x, pa.uint64()), "v": pa.array(y, pa.uint64())})

    def _large_reduce(self, rows: pa.Table) -> pa.Table:
        """Large-star: each node u links its larger neighbours to m(u) = min(u, neighbours)."""
        u, v, shard = u64(rows.column("u")), u64(rows.column("v")), rows.column("shard").combine_chunks()
        m = _group_min(u, v)
        big = v > u
        return self._distinct(v[big], m[big], shard.filter(pa.array(big)))

    def _small_map(self, rows: pa.Table) -> pa.Table:
        """Every edge once, as (larger, smaller), to the partition of its larger node."""
        p, q, _ = self._endpoints(rows)
        keep = p != q
        hi, lo = np.maximum(p, q)[keep], np.minimum(p, q)[keep]
        return pa.table({"part": pa.array(partition_of(hi, self._parts)), "row": pa.array(np.zeros(len(hi), np.int64)),
                         "u": pa.array(hi, pa.uint64()), "v": pa.array(lo, pa.uint64())})

    def _small_reduce(self, rows: pa.Table) -> pa.Table:
        """Small-star: each node u links itself and its smaller neighbours to m = min(u, neighbours).
        The fingerprint of the distinct edges it received tells the fit when nothing changes any more."""
        u, v, shard = u64(rows.column("u")), u64(rows.column("v")), rows.column("shard").combine_chunks()
        first = unique_pairs(u, v)
        u, v, shard = u[first], v[first], pc.take(shard, pa.array(first, pa.int64()))
        count, fp = _fingerprint(u, v)
        uniq, at, inv = np.unique(u, return_index=True, return_inverse=True)
        m_u = uniq.copy()
        np.minimum.at(m_u, inv, v)
        a, b = np.r_[v, uniq], np.r_[m_u[inv], m_u]  # each smaller neighbour, and u itself, -> m(u)
        sh = pa.concat_arrays([shard, pc.take(shard, pa.array(at, pa.int64()))])
        keep = a != b
        out = self._distinct(a[keep], b[keep], sh.filter(pa.array(keep)))
        return out.replace_schema_metadata({b"dedup.counts": json.dumps({"edges": count, "fingerprint": fp}).encode()})

    @staticmethod
    def _distinct(a: np.ndarray, b: np.ndarray, shard: pa.Array) -> pa.Table:
        first = unique_pairs(a, b)
        return edge_table(a[first], b[first], pc.take(shard, pa.array(first, pa.int64())), sa="u", sb="v")

    # --- labels and the keep rule -------------------------------------------------------------------------
    def _label_map(self, rows: pa.Table) -> pa.Table:
        is_node = present(rows, "node")
        nodes = rows.filter(pa.array(is_node))
        pairs = rows.filter(pa.array(present(rows, "x")))
        stars = rows.filter(pa.array(present(rows, "u")))
        x, y, u, v = (u64_of(pairs, "x"), u64_of(pairs, "y"), u64_of(stars, "u"), u64_of(stars, "v"))
        sim = values_of(pairs, "sim").astype(np.float64) if "sim" in pairs.column_names else np.zeros(0)
        nk = u64(nodes.column("node"))
        node = np.r_[nk, x, y, u, v]
        label = np.r_[nk, x, y, np.minimum(u, v), np.minimum(u, v)]
        sims = np.r_[np.full(len(nk), np.nan), sim, sim, np.full(2 * len(u), np.nan)]
        n_other = len(node) - len(nk)
        head = nodes.select(["row", "id", "rank", "tie", "error"])
        other = pa.table({"row": pa.array(np.zeros(n_other, np.int64)), "id": pa.nulls(n_other, pa.string()),
                          "rank": pa.nulls(n_other, pa.uint64()), "tie": pa.nulls(n_other, pa.uint64()),
                          "error": pa.nulls(n_other, pa.string())})
        t = pa.concat_tables([head, other.cast(head.schema)])
        return t.append_column("part", pa.array(partition_of(node, self._parts))) \
            .append_column("node", pa.array(node, pa.uint64())).append_column("label", pa.array(label, pa.uint64())) \
            .append_column("sim", pa.array(sims, pa.float64()))

    def _label_reduce(self, rows: pa.Table) -> pa.Table:
        """One row per node record: its component (smallest linked node) and best similarity."""
        node, label = u64(rows.column("node")), u64(rows.column("label"))
        sim = values_of(rows, "sim").astype(np.float64)
        is_node = pc.is_valid(rows.column("id")).to_numpy(zero_copy_only=False)
        uniq, inv = np.unique(node, return_inverse=True)
        best_label = np.full(len(uniq), np.uint64(0xFFFFFFFFFFFFFFFF))
        np.minimum.at(best_label, inv, label)
        best_sim = np.full(len(uniq), -np.inf)
        np.fmax.at(best_sim, inv, np.nan_to_num(sim, nan=-np.inf))
        nodes = rows.filter(pa.array(is_node)).drop_columns(["part", "label", "sim"])
        at = inv[is_node]
        s = best_sim[at]
        return nodes.append_column("label", pa.array(best_label[at], pa.uint64())) \
            .append_column("sim", pa.array(np.where(np.isfinite(s), s, np.nan), pa.float64()))

    def _keep_map(self, rows: pa.Table) -> pa.Table:
        rows = rows.drop_columns(["shard"]) if "shard" in rows.column_names else rows
        return rows.append_column("part", pa.array(partition_of(u64(rows.column("label")), self._parts)))

    def _keep_reduce(self, rows: pa.Table) -> pa.Table:
        label = u64(rows.column("label"))
        label2 = u64(rows.column("label2")) if "label2" in rows.column_names else np.zeros(len(label), np.uint64)
        ok = pc.is_null(rows.column("error")).to_numpy(zero_copy_only=False)
        group = np.where(ok, mix64(label ^ mix64(label2)), u64(rows.column("node")))  # errored rows alone
        best, size = keep_best(group, u64(rows.column("rank")), u64(rows.column("tie")), u64(rows.column("node")))
        removed = (best != np.arange(len(best))) & ok
        ids = rows.column("id").combine_chunks()
        dup_of = pc.if_else(pa.array(removed), pc.take(ids, pa.array(best)), pa.scalar(None, pa.string()))
        out = {"shard": rows.column("shard"), "row": rows.column("row"),
               "component": pa.array(label.view(np.int64), mask=~ok),
               "size": pa.array(size.astype(np.int32), mask=~ok), "dup_of": dup_of,
               "match": pc.if_else(pa.array(removed), self.match, pa.scalar(None, pa.string())),
               "error": rows.column("error")}
        if self.similarity_name:
            sim = values_of(rows, "sim").astype(np.float64) if "sim" in rows.column_names else np.full(len(label), np.nan)
            shown = self.similarity_column(np.nan_to_num(sim))
            out[self.similarity_name] = pa.array(shown, mask=np.isnan(sim)).cast(self.similarity_type)
        return pa.table(out)

    def describe(self, artifact: pa.Table | None) -> dict[str, Any]:
        return {} if artifact is None else json.loads(artifact.schema.metadata.get(META_INFO, b"{}"))


def _group_min(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """For each edge (u, v): min(u, every neighbour of u)."""
    if not len(u):
        return np.zeros(0, np.uint64)
    uniq, inv = np.unique(u, return_inverse=True)
    m = uniq.copy()
    np.minimum.at(m, inv, v)
    return m[inv]


def _count_rows(table: pa.Table) -> pa.Table:
    return pa.table({"n": pa.array([table.num_rows], pa.int64())})
