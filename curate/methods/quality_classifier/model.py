"""fastText model files for the quality classifier: their labels (read from the file's header, without loading
the model), loading, the text preparation fastText expects, and P(label) for a batch of texts.

The `fasttext` module comes from `fasttext-numpy2-wheel` (the `text` extra): fastText 0.9.2 built for NumPy 2,
which trains and predicts. (The official 0.9.2 wheels' `predict` fails on NumPy 2 with `copy=False`, and
`fasttext-predict`, which langid's fastText backend can use, cannot train; both install the same module name.)
"""
from __future__ import annotations

import importlib.util
import struct
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import ConfigError

PACKAGE = "fasttext-numpy2-wheel==0.9.2"
LABEL_PREFIX = "__label__"
PREPARE = "newlines-to-spaces/1"  # what `prepare` does to a text: bump when it changes (part of the stage key)
_MAGIC, _VERSIONS = 793712314, (11, 12)  # fastText's model file magic number and the versions 0.9.x writes


def require(train: bool = False) -> Any:
    """The `fasttext` module, or a ConfigError with the line that installs it (and one that can train)."""
    if importlib.util.find_spec("fasttext") is None:
        raise ConfigError(f"the quality classifier needs fastText, which is not installed: pip install '{PACKAGE}' "
                          "(or pip install 'curate[text]')")
    import fasttext

    if train and not hasattr(fasttext, "train_supervised"):
        raise ConfigError("the installed `fasttext` module can only predict (fasttext-predict?); training needs "
                          f"pip install '{PACKAGE}'")
    return fasttext


def library_version() -> str:
    dists = metadata.packages_distributions().get("fasttext", [])
    return ", ".join(f"{d} {metadata.version(d)}" for d in sorted(set(dists))) or "unknown"


def full_label(label: str) -> str:
    """`hq` -> `__label__hq`; a label given with its prefix is kept."""
    return label if label.startswith(LABEL_PREFIX) else LABEL_PREFIX + label


def model_labels(path: Path) -> list[str]:
    """The labels of a fastText model file (.bin or quantized .ftz), read from its dictionary: the model's
    matrices (gigabytes for DCLM's classifier) are not read. Raises ConfigError if it is no fastText model."""
    with path.open("rb") as f:
        head = f.read(92)  # magic, version, 12 int32 arguments, a double; dictionary sizes (3 int32, 2 int64)
        magic, version = struct.unpack("<ii", head[:8]) if len(head) == 92 else (0, 0)
        if magic != _MAGIC or version not in _VERSIONS:
            raise ConfigError(f"{path} is not a fastText model file (.bin or .ftz, fastText 0.9)")
        size, _, nlabels = struct.unpack("<iii", head[64:76])
        data, pos, labels = f.read(1 << 20), 0, []
        for _ in range(size):  # each entry: the word, NUL, its count (int64), its type (int8: 1 is a label)
            end = data.find(b"\0", pos)
            while end < 0 or end + 9 >= len(data):
                more = f.read(1 << 20)
                if not more:
                    raise ConfigError(f"{path}: the fastText dictionary ends early (a truncated file?)")
                data, pos = data[pos:] + more, 0
                end = data.find(b"\0", pos)
            if data[end + 9] == 1:
                labels.append(data[pos:end].decode("utf-8", "replace"))
            pos = end + 10
    if len(labels) != nlabels:
        raise ConfigError(f"{path}: read {len(labels)} labels from the fastText dictionary, its header says {nlabels}")
    return labels


def prepare(texts: list[str]) -> list[str]:
    """Texts as fastText reads them: one line each, so a newline becomes a space, exactly as DCLM
    (`text.replace("\\n", " ")`) and datatrove do before `predict` (fastText's Python API refuses a text with a
    newline, and a newline in training data ends the example). Nothing else changes: fastText splits words on
    whitespace itself (`\\r`, tabs included), and case and punctuation are the model's business. (Python's
    `str.replace` here: about ten times faster than Arrow's `replace_substring` on documents.)"""
    return [t.replace("\n", " ") for t in texts]


def probabilities(model: Any, texts: list[str], label: str) -> np.ndarray:
    """P(label) per text from fastText's batch predict (all labels asked for: a label outside the top k of a
    multi-label model still gets its probability). fastText adds 1e-5 inside its log, so values are clipped."""
    if not texts:
        return np.zeros(0)
    labels, probs = model.predict(texts, k=-1, threshold=0.0, on_unicode_error="replace")
    out = np.zeros(len(texts))
    for i, (row_labels, row_probs) in enumerate(zip(labels, probs)):
        for j, name in enumerate(row_labels):
            if name == label:
                out[i] = row_probs[j]
                break
    return np.clip(out, 0.0, 1.0)
