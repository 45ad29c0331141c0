"""Candidate pairs of near-duplicates, the first steps of the dedup stages' fit (components.py runs them):

  buckets    band keys -> part(key); in each bucket, nodes with an identical payload link to the first of
             them; between distinct payloads a star from the bucket's first node when every candidate is
             a duplicate, else every pair (up to WINDOW others per member)
  join_a     pairs meet their `a` node's payload   (pair -> part(a), node record -> part(node))
  join_b     ... and their `b` node's: the stage's similarity, accepted or not   (pair -> part(b)); the
             NEAR_MISSES most similar refused pairs go to the step's metadata (`near_misses`)
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernels.hashing import mix64, partition_of

WINDOW = 1000  # checked pairs: each member of a bucket with at most this many others (all pairs below it)
NEAR_MISSES = 20  # refused candidate pairs recorded, the most similar first (the report shows them)


def u64(a: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A node-id (or key) column as numpy uint64."""
    return np.asarray(a.to_numpy(zero_copy_only=False) if not isinstance(a, np.ndarray) else a, np.uint64)


def u64_of(t: pa.Table, name: str) -> np.ndarray:
    """A uint64 column, or none when no earlier step wrote it (every partition was empty)."""
    return u64(t.column(name)) if name in t.column_names else np.zeros(t.num_rows, np.uint64)


def values_of(t: pa.Table, name: str) -> np.ndarray:
    """A column as numpy (nulls as NaN or None)."""
    return t.column(name).to_numpy(zero_copy_only=False)


def present(t: pa.Table, name: str) -> np.ndarray:
    """Which rows hold a value in `name`: after a unified read, which records are of the kind that has it."""
    if name not in t.column_names:
        return np.zeros(t.num_rows, bool)
    return pc.is_valid(t.column(name)).to_numpy(zero_copy_only=False)


def edge_table(a: np.ndarray, b: np.ndarray, shard: pa.Array, sa: str = "a", sb: str = "b", **extra: Any) -> pa.Table:
    """Edges as a reduce output: the shard label routes them to a map unit of the next step (any shard)."""
    return pa.table({sa: pa.array(a, pa.uint64()), sb: pa.array(b, pa.uint64()), **extra,
                     "shard": pa.array(shard, pa.string()), "row": pa.array(np.zeros(len(a), np.int64))})


def unique_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct (a, b), in (a, b) order."""
    order = np.lexsort((b, a))
    sa, sb = a[order], b[order]
    first = np.r_[True, (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])] if len(a) else np.zeros(0, bool)
    return order[first]


class CandidatePairs:
    """The bucket and join steps; mixed into GraphStage, which provides `_parts`, the payload and the similarity."""

    def _bucket_map(self, nodes: pa.Table) -> pa.Table:
        nodes = nodes.filter(pc.is_null(nodes.column("error")))
        keys = self.bucket_keys(nodes)
        n, bands = keys.shape if keys.ndim == 2 else (0, 0)
        keyed = mix64(keys ^ mix64(np.arange(bands, dtype=np.uint64))[None, :]).ravel()  # bands never collide
        node = np.repeat(u64(nodes.column("node")), bands)
        same = np.repeat(self.payload_key(nodes) if n else np.zeros(0, np.uint64), bands)
        return pa.table({"part": pa.array(partition_of(keyed, self._parts)), "row": pa.array(np.zeros(len(node), np.int64)),
                         "key": pa.array(keyed, pa.uint64()), "node": pa.array(node, pa.uint64()),
                         "same": pa.array(same, pa.uint64())})

    def _bucket_reduce(self, rows: pa.Table) -> pa.Table:
        """The candidate pairs of each bucket. Nodes with an identical payload (`payload_key`) link to the
        first of them. Between distinct payloads: when every candidate is accepted (`verifies` false), a
        star from the bucket's first node is enough for the components; when pairs are checked, a star
        would lose the pairs of two members far from the centre, so every pair is compared, each member
        with the next WINDOW distinct ones (all pairs unless a bucket holds more; counted)."""
        key, node, same = u64(rows.column("key")), u64(rows.column("node")), u64(rows.column("same"))
        shard = rows.column("shard").combine_chunks()
        order = np.lexsort((node, same, key))
        k, v, d = key[order], node[order], same[order]
        new_key = np.r_[True, k[1:] != k[:-1]]
        new_same = new_key | np.r_[True, d[1:] != d[:-1]]
        rep = np.maximum.accumulate(np.where(new_same, np.arange(len(k)), 0))  # first node of its payload
        a, b, at = [v[rep][~new_same]], [v[~new_same]], [np.flatnonzero(~new_same)]
        reps = np.flatnonzero(new_same)  # one per (bucket, payload)
        group = np.cumsum(new_key)[reps]
        start = np.r_[True, group[1:] != group[:-1]]
        first = np.maximum.accumulate(np.where(start, np.arange(len(reps)), 0))
        pos = np.arange(len(reps)) - first
        size = np.diff(np.r_[np.flatnonzero(start), len(reps)])[np.cumsum(start) - 1]
        if not self.verifies:
            a.append(v[reps[first]][pos > 0]), b.append(v[reps][pos > 0]), at.append(reps[pos > 0])
            wide = 0
        else:
            ahead = np.minimum(size - pos - 1, WINDOW)  # how many later reps each one is compared with
            by = np.argsort(-ahead, kind="stable")
            left = ahead[by]
            for step in range(1, int(left[0]) + 1 if len(left) else 1):
                i = by[:int(np.searchsorted(-left, -step, side="right"))]
                a.append(v[reps[i]]), b.append(v[reps[i + step]]), at.append(reps[i + step])
            wide = int((start & (size > WINDOW + 1)).sum())
        a, b, at = np.concatenate(a), np.concatenate(b), np.concatenate(at)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        pair = unique_pairs(lo, hi)
        meta = {b"dedup.counts": json.dumps({"wide_buckets": wide}).encode()}
        return edge_table(lo[pair], hi[pair], pc.take(shard, pa.array(order[at[pair]], pa.int64()))).replace_schema_metadata(meta)

    def _payload_of(self, rows: pa.Table, keys: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        """The payload of each node in `keys` from the node records among `rows` (and which were found)."""
        nodes = rows.filter(pa.array(present(rows, "node")))
        nk = u64(nodes.column("node"))
        if not len(nk):
            return nodes.select(list(self.payload)).slice(0, 0), np.zeros(len(keys), bool)
        order = np.argsort(nk, kind="stable")
        pos = np.minimum(np.searchsorted(nk[order], keys), len(nk) - 1)
        found = nk[order][pos] == keys
        return nodes.select(list(self.payload)).take(pa.array(order[pos][found], pa.int64())), found

    def _join_a_map(self, rows: pa.Table) -> pa.Table:
        return self._join_map(rows, "a", ["a", "b"])

    def _join_b_map(self, rows: pa.Table) -> pa.Table:
        return self._join_map(rows, "b", ["a", "b", *(f"a_{c}" for c in self.payload)])

    def _join_map(self, rows: pa.Table, end: str, edge_cols: list[str]) -> pa.Table:
        """Node records to their node's partition, edges to their `end` node's: each meets its payload."""
        is_node = present(rows, "node")
        nodes = rows.filter(pa.array(is_node & ~present(rows, "error")))
        edges = rows.filter(pa.array(~is_node & present(rows, "a")))
        parts = [pa.table({"part": pa.array(partition_of(u64(nodes.column("node")), self._parts)),
                           "row": pa.array(np.zeros(nodes.num_rows, np.int64)), "node": nodes.column("node"),
                           **{c: nodes.column(c) for c in self.payload}}),
                 pa.table({"part": pa.array(partition_of(u64_of(edges, end), self._parts)),
                           "row": pa.array(np.zeros(edges.num_rows, np.int64)),
                           **{c: edges.column(c) if c in edges.column_names else  # no candidate anywhere
                              pa.array([], pa.uint64() if c in "ab" else nodes.schema.field(c[2:]).type)
                              for c in edge_cols}})]
        return pa.concat_tables(parts, promote_options="permissive")

    def _join_a_reduce(self, rows: pa.Table) -> pa.Table:
        edges = rows.filter(pa.array(present(rows, "a")))
        a, b = u64(edges.column("a")), u64(edges.column("b"))
        first = unique_pairs(a, b)  # the same pair from several bands: once
        edges, a, b = edges.take(pa.array(first, pa.int64())), a[first], b[first]
        payload, found = self._payload_of(rows, a)
        keep = pa.array(found)
        out = edge_table(a[found], b[found], edges.column("shard").filter(keep).combine_chunks(),
                     **{f"a_{c}": payload.column(c) for c in self.payload})
        return out

    def _join_b_reduce(self, rows: pa.Table) -> pa.Table:
        edges = rows.filter(pa.array(present(rows, "a")))
        b = u64(edges.column("b"))
        payload_b, found = self._payload_of(rows, b)
        edges = edges.filter(pa.array(found))
        payload_a = pa.table({c: edges.column(f"a_{c}") for c in self.payload})
        sim, ok = self.similarity(payload_a, payload_b) if edges.num_rows else (np.zeros(0), np.zeros(0, bool))
        meta = {b"dedup.counts": json.dumps({"candidate_pairs": int(edges.num_rows),
                                             "accepted_pairs": int(ok.sum())}).encode(),
                b"dedup.near_misses": json.dumps(near_misses(u64(edges.column("a")), b[found], sim, ok)).encode()}
        keep = pa.array(ok)
        out = edge_table(u64(edges.column("a"))[ok], b[found][ok], edges.column("shard").filter(keep).combine_chunks(),
                     sa="x", sb="y", sim=pa.array(sim[ok], pa.float64()))
        return out.replace_schema_metadata(meta)


def near_misses(a: np.ndarray, b: np.ndarray, sim: np.ndarray, ok: np.ndarray) -> list[list[Any]]:
    """The NEAR_MISSES most similar refused pairs as [a, b, similarity] (node ids as text: JSON has no
    uint64), most similar first, ties by node ids: the top of all partitions' lists is the top overall."""
    refused = np.flatnonzero(~ok)
    order = refused[np.lexsort((b[refused], a[refused], -sim[refused]))][:NEAR_MISSES]
    return [[str(a[i]), str(b[i]), round(float(sim[i]), 6)] for i in order]


def top_near_misses(metadata: list[dict[bytes, bytes]]) -> list[list[Any]] | None:
    """The NEAR_MISSES most similar refused pairs over all partitions of `join_b` (None: steps reused from a
    version that did not record them)."""
    if metadata and not any(b"dedup.near_misses" in meta for meta in metadata):
        return None
    found = [m for meta in metadata for m in json.loads(meta.get(b"dedup.near_misses", b"[]"))]
    return sorted(found, key=lambda m: (-m[2], int(m[0]), int(m[1])))[:NEAR_MISSES]
