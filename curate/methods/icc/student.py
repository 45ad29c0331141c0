"""ICC `icc-student` backend: the authors' distilled text-only regressor (docs/methods/icc.md, backend 3).

A `RobertaForSequenceClassification` with one regression output, loaded from a local folder only
(`local_files_only=True`, hub access switched off). score = logits[:, 0], unscaled; higher = more
concrete. fp16 on a GPU, fp32 on CPU.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import ConfigError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))


def check_weights_dir(weights: str | None) -> dict[str, Any]:
    """Plan-time check of a student folder; returns its config. Raises ConfigError naming what is missing."""
    if not weights:
        raise ConfigError("icc: backend 'icc-student' needs `weights`: a local folder with the student's "
                          "config.json, tokenizer and model.safetensors (nothing is fetched from a hub)")
    folder = Path(weights)
    if not folder.is_dir():
        raise ConfigError(f"icc: student weights folder {weights!r} not found (a local directory is required; "
                          f"hub names are refused)")
    problems = []
    if not (folder / "config.json").is_file():
        problems.append("config.json is missing")
    if not any((folder / f).is_file() for f in WEIGHT_FILES) and not list(folder.glob("model-*.safetensors")):
        problems.append(f"no weights file ({' or '.join(WEIGHT_FILES)})")
    if not any(all((folder / f).is_file() for f in group) for group in TOKENIZER_FILES):
        problems.append("no tokenizer (tokenizer.json, or vocab.json + merges.txt)")
    if problems:
        raise ConfigError(f"icc: student weights folder {weights!r} is incomplete: {'; '.join(problems)}")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"icc: {folder / 'config.json'} is not valid JSON ({e})") from e
    n_labels = len(config["id2label"]) if "id2label" in config else config.get("num_labels", 2)
    problem = config.get("problem_type")
    archs = config.get("architectures") or []
    if n_labels != 1 or problem not in (None, "regression") or \
            (archs and not any(a.endswith("ForSequenceClassification") for a in archs)):
        raise ConfigError(f"icc: {folder / 'config.json'} is not a one-output regression head "
                          f"(architectures {archs}, labels {n_labels}, problem_type {problem!r}); "
                          f"the ICC student is RobertaForSequenceClassification with num_labels 1")
    return config


class StudentScorer:
    """The loaded student on one worker; `score` returns logits[:, 0] and the truncation flags."""

    def __init__(self, weights: str, device: str = "auto", batch_size: int | None = None):
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # lengths past the limit are measured on purpose
        hf_logging.disable_progress_bar()
        self.torch = torch
        self.device = "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(weights, local_files_only=True)
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForSequenceClassification.from_pretrained(
            weights, local_files_only=True, dtype=dtype).to(self.device).eval()
        positions = getattr(self.model.config, "max_position_embeddings", 514)
        # RoBERTa's position ids start after the padding index: 514 positions hold 512 tokens.
        limit = positions - 2 if self.model.config.model_type in ("roberta", "xlm-roberta") else positions
        tok_max = self.tokenizer.model_max_length if self.tokenizer.model_max_length < 1_000_000 else limit
        self.max_length = int(min(tok_max, limit))
        self.batch = batch_size or (256 if self.device == "cuda" else 32)
        self.forward_s = 0.0

    def score(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Scores (float32) and whether each text was truncated to the model's maximum length.

        Texts are batched in order of length (less padding); results come back in input order.
        """
        torch = self.torch
        n = len(texts)
        out = np.zeros(n, np.float32)
        lengths = np.array([len(ids) for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]],
                           np.int64) if n else np.zeros(0, np.int64)
        order = np.argsort(lengths, kind="stable")
        t0 = time.perf_counter()
        with torch.inference_mode():
            for start in range(0, n, self.batch):
                idx = order[start:start + self.batch]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                logits = self.model(**enc).logits
                out[idx] = logits[:, 0].float().cpu().numpy()
        self.forward_s += time.perf_counter() - t0
        return out, lengths > self.max_length
