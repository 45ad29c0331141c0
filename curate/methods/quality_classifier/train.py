"""Training a fastText quality classifier, the DCLM recipe (Li et al. 2024, "DataComp-LM", section 4.4):
texts of a target corpus are the positives, texts sampled from the pool are the negatives (as many as the
positives unless told otherwise), a supervised fastText model with word bigrams separates them, and P(positive)
is the score. `curate train-classifier` and `curate.api.train_classifier` come here.

Deterministic for a seed: the negatives' sample, the held-out split and the order of the training lines come
from the seed, and fastText trains on one thread with the same seed (more threads are faster and not
reproducible: fastText's threads update shared weights without locks), in a fresh process (`_TRAIN`, below). Beside the model, `<model>.json` records
the training files' sha256, the counts, the parameters and the held-out metrics; the stage reads it back.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curate.dataset import Dataset
from curate.errors import ConfigError, DataError
from curate.formats import format_of
from curate.methods.models import sha256_of
from curate.methods.quality_classifier import model as ft

SIDECAR_FORMAT = "curate.quality_classifier/1"
# fastText 0.9.2 on one thread initialises only the first tenth of its input matrix (its `uniform` splits the
# matrix into ten blocks, one per thread) and trains on the rest as allocated. In a fresh process that memory is
# zero pages, so the `fasttext` command line is reproducible; in a long-lived process glibc may hand the matrix
# recycled heap memory, which made the same seed give different models in one Python process, and now and then
# NaN. So training runs in a fresh interpreter where every allocation over MMAP_THRESHOLD is fresh pages from the
# start, and the matrix (bucket x dim floats at least) must be larger than that.
MMAP_THRESHOLD = 64 << 10
_TRAIN = """
import json, sys
import fasttext
args = json.loads(sys.argv[1])
out = args.pop("out")
fasttext.train_supervised(**args).save_model(out)
"""
PLAIN_SUFFIXES = (".txt",)  # a plain text file is one document


@dataclass(frozen=True)
class TrainParams:
    """fastText's supervised training parameters (fastText's own defaults except word bigrams, as DCLM)."""

    epoch: int = 5
    ngrams: int = 2
    dim: int = 100
    lr: float = 0.1
    bucket: int = 2_000_000
    min_count: int = 1
    threads: int = 1
    seed: int = 0

    def check(self) -> None:
        for key in ("epoch", "ngrams", "dim", "bucket", "min_count", "threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train-classifier: {key} must be at least 1 (got {getattr(self, key)})")
        if self.bucket * self.dim * 4 < MMAP_THRESHOLD:  # (see _TRAIN)
            raise ConfigError(f"train-classifier: bucket x dim must be at least {MMAP_THRESHOLD // 4:,} (got "
                              f"{self.bucket} x {self.dim}): smaller models are not trained reproducibly")
        if not self.lr > 0:
            raise ConfigError(f"train-classifier: lr must be positive (got {self.lr})")


def sidecar_path(model: str | os.PathLike) -> Path:
    """`model.bin` -> `model.bin.json`."""
    return Path(f"{os.fspath(model)}.json")


def _plain_files(path: Path) -> list[Path]:
    """The .txt files to read as one document each: `path` itself, or those in a folder that holds no shard of
    a dataset format (a folder of JSONL shards with a README.txt is a dataset)."""
    if path.is_file():
        return [path] if path.name.lower().endswith(PLAIN_SUFFIXES) else []
    files = [p for p in sorted(path.rglob("*")) if p.is_file()
             and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)]
    if any(format_of(p.name) for p in files):
        return []
    return [p for p in files if p.name.lower().endswith(PLAIN_SUFFIXES)]


def read_texts(path: str | os.PathLike, column: str) -> tuple[list[str], int]:
    """The non-empty texts of one file or folder (JSONL, Parquet or CSV through the dataset readers, `column`;
    else plain .txt files, one document each), and how many were null or blank (left out, and counted)."""
    where = Path(path).expanduser()
    if not where.exists():
        raise DataError([f"train-classifier: {where} does not exist"])
    plain = _plain_files(where)
    if plain:
        texts = [p.read_text(encoding="utf-8", errors="replace") for p in plain]
    else:
        data = Dataset(where)
        texts = []
        for shard in data.shards:
            reader = data.open(shard)
            if column not in reader.schema.names:
                raise DataError([f"train-classifier: {shard.rel} in {where} has no column {column!r} (columns: "
                                 f"{', '.join(reader.schema.names)}); give --text-column"])
            col = reader.read([column]).column(column)
            if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_null(col.type)):
                raise DataError([f"train-classifier: column {column!r} of {shard.rel} in {where} is {col.type}; "
                                 "needs text"])
            texts += col.to_pylist()
    kept = [t for t in texts if t is not None and t.strip()]
    return kept, len(texts) - len(kept)


def _read_side(paths: list[str], column: str, side: str) -> tuple[list[str], list[dict[str, Any]], int]:
    """All texts of one side (positive or negative), each file's record for the sidecar, blanks left out."""
    if not paths:
        raise ConfigError(f"train-classifier: no {side} files given")
    texts, files, blank = [], [], 0
    for p in paths:
        got, empty = read_texts(p, column)
        texts += got
        blank += empty
        files.append({"path": str(Path(p).expanduser().resolve()), "sha256": sha256_of(Path(p).expanduser()),
                      "texts": len(got), "blank": empty})
    if not texts:
        raise DataError([f"train-classifier: the {side} files ({', '.join(map(str, paths))}) hold no text: a "
                         f"classifier needs examples of both classes"])
    return texts, files, blank


def _split(n: int, holdout: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) indices of n examples of one class."""
    order = rng.permutation(n)
    n_held = int(round(holdout * n)) if n > 1 else 0
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def _sample_negatives(n_neg: int, n_pos: int, balance: bool, max_negatives: int | None,
                      rng: np.random.Generator) -> np.ndarray:
    want = min(n_neg, n_pos) if balance else n_neg
    want = min(want, max_negatives) if max_negatives is not None else want
    return np.sort(rng.choice(n_neg, size=want, replace=False)) if want < n_neg else np.arange(n_neg)


def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve (the Mann-Whitney U statistic; tied scores count one half); None without
    examples of both classes."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - counts + (counts + 1) / 2.0)[inverse]  # 1-based ranks, ties averaged
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def metrics(scores: np.ndarray, positive: np.ndarray, cut: float = 0.5) -> dict[str, Any]:
    """Held-out precision, recall and F1 of `score >= cut`, accuracy and AUROC."""
    predicted = scores >= cut
    tp = int((predicted & positive).sum())
    precision = tp / int(predicted.sum()) if predicted.any() else None
    recall = tp / int(positive.sum()) if positive.any() else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {"rows": int(len(scores)), "positive": int(positive.sum()), "cut": cut, "precision": precision,
            "recall": recall, "f1": f1, "accuracy": float((predicted == positive).mean()) if len(scores) else None,
            "auroc": auroc(scores, positive)}


def _fit(lines: list[str], params: TrainParams, out: Path) -> None:
    """Train a fastText model on `__label__x text` lines (a temporary file: fastText's input) and save it at `out`,
    in a fresh process (see `_TRAIN`)."""
    ft.require(train=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", dir=out.parent, delete=False) as f:
        f.write("\n".join(lines) + "\n")
    args = {"input": f.name, "out": str(out), "lr": params.lr, "dim": params.dim, "epoch": params.epoch,
            "wordNgrams": params.ngrams, "minCount": params.min_count, "bucket": params.bucket, "loss": "softmax",
            "thread": params.threads, "seed": params.seed, "verbose": 0}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    try:
        done = subprocess.run([sys.executable, "-c", _TRAIN, json.dumps(args)], env=env, capture_output=True,
                              text=True, check=False)
    finally:
        os.unlink(f.name)
    if done.returncode:  # fastText's "Encountered NaN": the learning rate is too high for this data
        said = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DataError([f"train-classifier: fastText failed ({said}); a lower --lr may help (was {params.lr})"])


def train(positive: list[str], negative: list[str], out: str | os.PathLike, text_column: str = "text",
          label: str = "hq", negative_label: str = "lq", holdout: float = 0.1, balance: bool = True,
          max_negatives: int | None = None, params: TrainParams | None = None) -> dict[str, Any]:
    """Train, save the model at `out` and its sidecar beside it; returns the sidecar (counts, held-out metrics)."""
    params = params or TrainParams()
    params.check()
    if not 0 <= holdout < 1:
        raise ConfigError(f"train-classifier: holdout must be in [0, 1) (got {holdout})")
    pos_label, neg_label = ft.full_label(label), ft.full_label(negative_label)
    if pos_label == neg_label or any(c.isspace() for c in pos_label + neg_label):
        raise ConfigError(f"train-classifier: labels must differ and hold no whitespace ({label!r}, {negative_label!r})")
    pos, pos_files, pos_blank = _read_side(positive, text_column, "positive")
    neg, neg_files, neg_blank = _read_side(negative, text_column, "negative")
    rng, neg_read = np.random.default_rng(params.seed), len(neg)
    neg = [neg[i] for i in _sample_negatives(len(neg), len(pos), balance, max_negatives, rng)]
    (pos_train, pos_held), (neg_train, neg_held) = _split(len(pos), holdout, rng), _split(len(neg), holdout, rng)
    if not len(pos_train) or not len(neg_train):
        raise DataError([f"train-classifier: too few texts to train on both classes ({len(pos)} positive, {len(neg)} "
                         f"negative after sampling, holdout {holdout:g})"])
    pos, neg = ft.prepare(pos), ft.prepare(neg)
    lines = [f"{pos_label} {pos[i]}" for i in pos_train] + [f"{neg_label} {neg[i]}" for i in neg_train]
    lines = [lines[i] for i in rng.permutation(len(lines))]  # SGD sees the classes mixed
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    _fit(lines, params, out)
    model = ft.require().load_model(str(out))
    held = [pos[i] for i in pos_held] + [neg[i] for i in neg_held]
    is_pos = np.arange(len(held)) < len(pos_held)
    record = {"format": SIDECAR_FORMAT, "model_sha256": sha256_of(out), "label": pos_label,
              "negative_label": neg_label, "text_column": text_column, "prepare": ft.PREPARE,
              "fasttext": ft.library_version(), "params": {**asdict(params), "holdout": holdout, "balance": balance,
                                                           "max_negatives": max_negatives},
              "positive": pos_files, "negative": neg_files,
              "counts": {"positive": len(pos), "negative_read": neg_read, "negative": len(neg),
                         "blank_left_out": pos_blank + neg_blank,
                         "train_positive": len(pos_train), "train_negative": len(neg_train),
                         "holdout_positive": len(pos_held), "holdout_negative": len(neg_held)},
              "holdout_metrics": metrics(ft.probabilities(model, held, pos_label), is_pos)}
    sidecar_path(out).write_text(json.dumps(record, indent=1) + "\n")
    return record
