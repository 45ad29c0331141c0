"""The `autofj` stage: link each dataset row to at most one row of a reference table L (docs/methods/autofj.md).

fit: reads L, checks it (no null/empty keys, no duplicate ids, no exact duplicate records), takes a
uniform sample of the dataset (the rows with the smallest id hashes, at most `search_sample`; all rows in
`mode: reference`) and searches the join program on it. The artifact is L (id and join columns) with
each selected configuration's L-L neighbour counts, and the program JSON in its metadata.
score: applies the program to each batch (no search) through `autofj.Matcher`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from curate.errors import ConfigError, DataError
from curate.methods.autofj import program as autofj
from curate.methods.autofj.functions import SPACES
from curate.methods.autofj.minhash import LSHParams
from curate.methods.autofj.presentation import JoinPresenter
from curate.methods.autofj.tables import read_table
from curate.methods.hints import StageName
from curate.stage import ROW_HASH, FitContext, Stage, needs_string
from curate.storage import AnyPath, write_whole

log = logging.getLogger(__name__)

ERR_EMPTY = "empty_key: every join column is null or empty"
JoinColumn = Annotated[str, Field(min_length=1)]


def csv_as_shards(path: str | Path, folder: AnyPath, shards: int) -> AnyPath:
    """A CSV table as `shards` Parquet files (every column text) under `folder`; anything else is returned as is."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        return path
    table = read_table(path)
    folder.mkdir(parents=True, exist_ok=True)
    per = max(1, -(-table.num_rows // max(shards, 1)))
    for i, start in enumerate(range(0, max(table.num_rows, 1), per)):
        sink = pa.BufferOutputStream()
        pq.write_table(table.slice(start, per), sink)
        write_whole(folder / f"part-{i:05d}.parquet", sink.getvalue())
    return folder


def _strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) else column.cast(pa.string())


def check_reference(table: pa.Table, id_col: str, on: list[str], dedupe: bool, where: str
                    ) -> tuple[list[str], list[list[str]], dict[str, int]]:
    """L's ids and join columns as strings; raises DataError naming rows on nulls, empties and duplicates."""
    ids = _strings(table.column(id_col))
    cols = [_strings(table.column(c)) for c in on]
    problems = []
    blank = [pc.equal(pc.utf8_trim_whitespace(pc.fill_null(c, "")), "").to_numpy(zero_copy_only=False) for c in cols]
    bad_id = pc.is_null(ids).to_numpy(zero_copy_only=False)
    # A blank join value is unknown for that column; a row needs an id and at least one known value.
    for what, bad in [(f"null value(s) in id column {id_col!r}", bad_id),
                      (f"row(s) with every join column {on} null or empty", np.logical_and.reduce(blank))]:
        rows = np.flatnonzero(bad)
        if len(rows):
            shown = ", ".join(f"row {r} (id {ids[int(r)].as_py()!r})" for r in rows[:5])
            problems.append(f"{where}: {len(rows)} {what}: {shown}; the reference table must hold an id and "
                            f"a key in every row")
    if problems:
        raise DataError(problems)
    cols = [pc.fill_null(c, "") for c in cols]
    id_list = ids.to_pylist()
    col_lists = [c.to_pylist() for c in cols]
    if len(set(id_list)) != len(id_list):
        seen, dup = set(), []
        for i in id_list:
            if i in seen:
                dup.append(i)
            seen.add(i)
        raise DataError([f"{where}: {len(dup)} repeated id(s) in column {id_col!r}, e.g. {dup[:5]}"])
    recs = list(zip(*col_lists))
    first: dict[tuple, int] = {}
    dups = [i for i, r in enumerate(recs) if first.setdefault(r, i) != i]
    info = {"rows": len(id_list), "duplicates_dropped": 0,
            "blank_values": {c: int(b.sum()) for c, b in zip(on, blank)}}
    if dups and not dedupe:
        shown = ", ".join(f"id {id_list[i]!r} repeats id {id_list[first[recs[i]]]!r}" for i in dups[:5])
        msg = (f"{where}: {len(dups)} duplicate record(s) on {on}: {shown}; the precision estimate "
               f"assumes a duplicate-free reference (to keep the first: `dedupe_reference: true` in a config, "
               f"`--dedupe-reference` for curate join)")
        raise DataError([msg])
    if dups:
        keep = np.setdiff1d(np.arange(len(id_list)), dups)
        id_list = [id_list[i] for i in keep]
        col_lists = [[c[i] for i in keep] for c in col_lists]
        info["duplicates_dropped"] = len(dups)
    lowered = {tuple(v.lower() for v in r) for r in zip(*col_lists)}
    info["case_duplicates"] = len(id_list) - len(lowered)
    return id_list, col_lists, info


def _rule_columns(rules: list[list[str]], n_rows: int) -> dict[str, pa.Array]:
    """The negative rules as two list<string> columns spread evenly over the artifact's L rows.

    A large L learns millions of rules (6.8M from 1M synthetic names); inside the program JSON they would
    make the Parquet footer metadata exceed what readers accept by default (about 100 MB).
    """
    per_row = -(-len(rules) // max(n_rows, 1))
    offsets = pa.array(np.minimum(np.arange(n_rows + 1) * per_row, len(rules)), pa.int32())
    return {name: pa.ListArray.from_arrays(offsets, pa.array([r[i] for r in rules], pa.string()))
            for i, name in enumerate(("rule_a", "rule_b"))}


def _take(values: pa.Array, idx: np.ndarray) -> pa.Array:
    """values[idx], null where idx < 0."""
    return values.take(pa.array(np.maximum(idx, 0), mask=idx < 0)) if len(values) else pa.nulls(len(idx), values.type)


class AutoFJ(Stage):
    """Auto-FuzzyJoin (Li et al., SIGMOD 2021): links each row to at most one row of a reference table L, with a
    join program searched on a sample to reach `precision_target`; unmatched rows are new entities or misses.
    docs/methods/autofj.md has the details."""

    type = "autofj"
    version = "2"  # 2: new-entity estimate (mode default), blanks as unknown, `nearest` column
    presenter = JoinPresenter()

    def __init__(self,
                 reference: Annotated[str | Path, Field(description="the reference table L: a CSV file, or a Parquet "
                                                                    "file or folder")],
                 on: Annotated[JoinColumn | Annotated[list[JoinColumn], Field(min_length=1)],
                               Field(description="the join column(s), named alike in L and the dataset")],
                 reference_id: Annotated[str, Field(min_length=1, description="L's id column")] = "id",
                 precision_target: Annotated[float, Field(gt=0, lt=1, description="the estimated precision the "
                                                                                  "program must reach")] = 0.9,
                 precision_target_on: Annotated[Literal["point", "lower"],
                                                Field(description="what must clear precision_target: the point "
                                                                  "estimate, or the lower end of its interval "
                                                                  "(mode default)")] = "point",
                 space: Annotated[Literal[SPACES], Field(description="the join functions searched")] = "autofj_sm",
                 n_thresholds: Annotated[int, Field(ge=2, description="distance thresholds tried per join "
                                                                      "function")] = 50,
                 patience: Annotated[float, Field(ge=0, description="the column-weight search stops when a step "
                                                                    "gains less than this")] = 0.05,
                 negative_rules: Annotated[bool, Field(description="learn token rules that veto matches")] = True,
                 search_sample: Annotated[int, Field(ge=1, description="dataset rows the search runs on (smallest "
                                                                       "id hashes)")] = 20_000,
                 mode: Annotated[Literal["default", "reference"],
                                 Field(description="default: the estimate counts R rows with no match in L; "
                                                   "reference: the reference package's estimate, search on every "
                                                   "row with exact blocking")] = "default",
                 dedupe_reference: Annotated[bool, Field(description="drop L's exact duplicate records, keeping "
                                                                     "the first (else they fail the fit)")] = False,
                 blocking_budget: Annotated[Annotated[int, Field(ge=1)] | Literal["auto", "exact"] | None,
                                            Field(description="postings probed per row: auto (exact up to "
                                                                    "50k L rows), exact, or a number")] = "auto",
                 minhash_lsh: Annotated[bool | dict[str, int] | None,
                                        Field(description="add MinHash LSH candidates: true (20 bands x 5 rows) "
                                                          "or {bands, rows, max_bucket, seed}")] = False,
                 name: StageName = None):
        super().__init__(name)
        try:
            lsh = LSHParams.parse(minhash_lsh)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"autofj: {e}") from None
        if lsh is not None and mode == "reference":
            raise ConfigError("autofj: minhash_lsh adds candidates the reference blocker never sees; "
                              "it cannot be used with mode: reference")
        self.reference = str(reference)
        self.on = [on] if isinstance(on, str) else list(on)
        self.reference_id = reference_id
        if precision_target_on == "lower" and mode == "reference":
            raise ConfigError("autofj: precision_target_on: lower searches on the interval of the new-entity "
                              "models, which mode: reference does not have; use mode: default")
        self.precision_target = float(precision_target)
        self.precision_target_on = precision_target_on
        self.space, self.n_thresholds, self.patience = space, n_thresholds, float(patience)
        self.negative_rules, self.search_sample, self.mode = negative_rules, search_sample, mode
        self.dedupe_reference = dedupe_reference
        self.blocking_budget = blocking_budget
        # Kept as given when off (false or null); a mapping is stored filled in with the defaults.
        self.minhash_lsh = lsh.as_dict() if lsh else minhash_lsh
        self._lsh = lsh.as_dict() if lsh else None
        self._matcher: autofj.Matcher | None = None
        self._left_ids: list[str] = []
        self._configs: list[str] = []

    @property
    def inputs(self) -> tuple[str, ...]:
        return (*self.on, ROW_HASH)  # the id hash picks the search sample

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {"matched": pa.bool_(), "match_id": pa.string(), "est_precision": pa.float32(),
                "config": pa.string(), "distance": pa.float32(), "nearest": pa.float32(), "n_proposals": pa.int16(),
                "reason": pa.string(), "error": pa.string()}

    def depends_on(self) -> dict[str, Any]:
        return {"reference_fingerprint": self._reference_fingerprint()}

    def _reference_fingerprint(self) -> str:
        import hashlib

        p = Path(self.reference)
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        h = hashlib.sha256()
        for f in files:
            if f.is_file():
                h.update(f.name.encode())
                h.update(f.read_bytes())
        return h.hexdigest()[:16]

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        return needs_string(type)

    # --- fit ------------------------------------------------------------------------------------
    def _sample_fn(self, table: pa.Table) -> pa.Table:
        """Fit map: this shard's valid rows with the smallest id hashes (at most the sample size)."""
        ok = self._valid(table)
        t = table.filter(pa.array(ok)) if not ok.all() else table
        limit = self.search_sample if self.mode == "default" else t.num_rows
        order = np.argsort(t.column(ROW_HASH).to_numpy(), kind="stable")[:limit]
        out = t.take(pa.array(order)).select([*self.on, ROW_HASH])
        return out.replace_schema_metadata({b"autofj.rows": str(table.num_rows).encode(),
                                            b"autofj.valid_rows": str(t.num_rows).encode()})

    def fit(self, ctx: FitContext) -> pa.Table:
        ids, cols, info = check_reference(read_table(self.reference, [self.reference_id, *self.on]),
                                          self.reference_id, self.on, self.dedupe_reference,
                                          f"reference table {self.reference!r}")
        if len(ids) < 2:
            log.warning("autofj: the reference table has %d row(s): no L-L neighbourhoods, every estimate is 1",
                        len(ids))
        parts = list(ctx.map(self._sample_fn, [*self.on, ROW_HASH]))
        n_rows = sum(int((p.schema.metadata or {}).get(b"autofj.rows", b"0")) for p in parts)
        n_valid = sum(int((p.schema.metadata or {}).get(b"autofj.valid_rows", b"0")) for p in parts)
        sample = pa.concat_tables([p.replace_schema_metadata(None) for p in parts])
        order = np.argsort(sample.column(ROW_HASH).to_numpy(), kind="stable")
        if self.mode == "default":
            order = order[:self.search_sample]
        sample = sample.take(pa.array(order))
        right = [pc.fill_null(_strings(sample.column(c)), "").to_pylist() for c in self.on]
        res = autofj.fit(ids, cols, right, self.on, self.precision_target, self.space, self.n_thresholds,
                         self.patience, self.negative_rules, blocking_budget="exact" if self.mode == "reference" else self.blocking_budget,
                         minhash_lsh=self._lsh, new_entities=self.mode == "default",
                         skip_constant_columns=self.mode == "default", precision_target_on=self.precision_target_on)
        prog = res.program
        search = prog["search"]
        search["right_rows"] = n_rows
        search["right_rows_with_a_key"] = n_valid
        # Rows with every join column blank are errors, not matches: scale by the rows the sample is drawn from.
        scale = n_valid / max(search["rows"], 1)
        search["expected_true_matches"] = search["est_true_matches"] * scale
        search["expected_matches"] = search["matched"] * scale
        prog["reference"] = info
        prog["timings"] = res.timings
        arrays = {"id": pa.array(ids, pa.string())}
        arrays.update({c: pa.array(v, pa.string()) for c, v in zip(self.on, cols)})
        for j in range(res.ll_counts.shape[1]):
            arrays[f"ll_count_{j}"] = pa.array(res.ll_counts[:, j], pa.int32())
        arrays.update(_rule_columns(prog.pop("rules"), len(ids)))
        prog["n_rules"] = len(arrays["rule_a"].flatten())
        return pa.table(arrays).replace_schema_metadata({b"autofj.program": json.dumps(prog).encode()})

    # --- score ----------------------------------------------------------------------------------
    def setup(self, artifact: pa.Table | None) -> None:
        if artifact is None:
            raise ValueError("autofj: setup needs the program artifact produced by fit")
        prog = json.loads(artifact.schema.metadata[b"autofj.program"])
        prog["rules"] = [list(p) for p in zip(*(artifact.column(c).combine_chunks().flatten().to_pylist()
                                                for c in ("rule_a", "rule_b")))]
        self._left_ids = artifact.column("id").to_pylist()
        cols = [artifact.column(c).to_pylist() for c in self.on]
        counts = np.stack([artifact.column(f"ll_count_{j}").to_numpy() for j in range(len(prog["configs"]))], 1) \
            if prog["configs"] else np.zeros((len(self._left_ids), 0), np.int32)
        self._matcher = autofj.Matcher(prog, self._left_ids, cols, counts)
        self._configs = [f"{c['function']}@{c['theta']:.6g}" for c in prog["configs"]]
        self._left_id_array = pa.array(self._left_ids, pa.string())
        self._config_array = pa.array(self._configs, pa.string())

    def _valid(self, batch: pa.Table) -> np.ndarray:
        """Rows with a known (non-blank) value in at least one join column; all rows invalid on a non-string column."""
        ok = np.zeros(batch.num_rows, bool)
        for c in self.on:
            col = batch.column(c)
            if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
                return np.zeros(batch.num_rows, bool)
            empty = pc.equal(pc.utf8_trim_whitespace(pc.fill_null(col, "")), "")
            ok |= ~empty.to_numpy(zero_copy_only=False)
        return ok

    def score(self, batch: pa.Table) -> pa.Table:
        if self._matcher is None:
            raise RuntimeError("autofj: score called before setup")
        n = batch.num_rows
        bad_type = [c for c in self.on if not (pa.types.is_string(batch.column(c).type)
                                               or pa.types.is_large_string(batch.column(c).type))]
        ok = self._valid(batch)
        rows = np.flatnonzero(ok)
        # A blank value is unknown for its column (the program skips it); only all-blank rows are errors.
        m = self._matcher.match([pc.fill_null(batch.column(c).take(pa.array(rows)), "").to_pylist() for c in self.on])
        hit = m.l >= 0
        # Per row: index into the L ids, the configuration names and the reason strings (-1 = null).
        l_idx = np.full(n, -1, np.int64)
        l_idx[rows] = m.l
        c_idx = np.full(n, -1, np.int64)
        c_idx[rows[hit]] = m.config[hit]
        reasons = [autofj.REASONS[i] for i in range(len(autofj.REASONS))]
        vetoes = sorted({v for v in m.veto if v})
        r_idx = np.full(n, -1, np.int64)
        code = m.reason.astype(np.int64)
        r_idx[rows] = np.where(hit, -1, code)
        if vetoes:
            pos = {v: len(reasons) + i for i, v in enumerate(vetoes)}
            reasons += [f"vetoed {v}" for v in vetoes]
            r_idx[rows] = [pos[v] if v else r for v, r in zip(m.veto, r_idx[rows].tolist())]
        bad_reason = "bad_key" if bad_type else "empty_key"
        reasons.append(bad_reason)
        r_idx[~ok] = len(reasons) - 1
        err = ("bad_key: join column(s) " + ", ".join(f"{c!r} of type {batch.column(c).type}" for c in bad_type)
               + " are not strings") if bad_type else ERR_EMPTY
        matched = l_idx >= 0
        est = np.zeros(n, np.float32)
        dist = np.zeros(n, np.float32)
        near = np.full(n, np.nan, np.float32)
        near[rows] = m.nearest
        est[rows[hit]] = m.est[hit]
        dist[rows[hit]] = m.distance[hit]
        nprop = np.zeros(n, np.int16)
        nprop[rows] = np.minimum(m.n_proposals, 32767)
        return pa.table({
            "matched": pa.array(matched), "match_id": _take(self._left_id_array, l_idx),
            "est_precision": pa.array(est, pa.float32(), mask=~matched),
            "config": _take(self._config_array, c_idx), "distance": pa.array(dist, pa.float32(), mask=~matched),
            "nearest": pa.array(near, pa.float32(), mask=np.isnan(near)),
            "n_proposals": pa.array(nprop, pa.int16()), "reason": _take(pa.array(reasons, pa.string()), r_idx),
            "error": _take(pa.array([err], pa.string()), np.where(ok, -1, 0)),
        })

    def describe(self, artifact: pa.Table | None) -> dict[str, Any]:
        if artifact is None:
            return {}
        prog = json.loads(artifact.schema.metadata[b"autofj.program"])
        s = prog["search"]
        return {"program": {k: prog.get(k) for k in ("on", "space", "precision_target", "precision_target_on", "configs",
                                                     "column_weights", "k", "blocking_budget", "minhash_lsh",
                                                     "left")},
                "rules": prog["n_rules"], "est_precision": s["est_precision"],
                "est_precision_se": s["est_precision_se"],
                "est_precision_interval": s.get("est_precision_interval"), "search_target": s.get("search_target"),
                "precision_models": s.get("precision_models"),
                "search_rows": s["rows"], "right_rows": s.get("right_rows"),
                "expected_matches": s.get("expected_matches"), "expected_true_matches": s.get("expected_true_matches"),
                "far_beyond_theta_share": s["far_beyond_theta_share"], "reference": prog.get("reference"),
                "right_rows_with_a_key": s.get("right_rows_with_a_key"),
                "new_entity_share": (prog.get("new_entities") or {}).get("share"),  # π0: none within reach
                "new_share": (prog.get("new_entities") or {}).get("new_share"),  # new entities (the warning's)
                "warnings": prog.get("warnings", []),
                "lsh_skipped_buckets": s.get("lsh_skipped_buckets"),
                "timings": prog.get("timings")}
