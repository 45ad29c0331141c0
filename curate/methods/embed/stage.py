"""Embedding workers (stage `embed`, docs/methods/embed.md): open_clip image/text towers and
sentence-transformers text encoders, loaded from local files only, on GPU when the worker sees one.

Vectors are data, not scores: `<name>.vector` (fixed_size_list<float16>[d], or float32 with
`vector_dtype: float32`, L2-normalised in float32 before the cast) is stored with the stage's per-shard
outputs for later stages to read and is left out of the manifest. The manifest gets `<name>.error`,
`<name>.random_init` and, for images, `width`/`height`, for texts `n_tokens` (before truncation) and `truncated`.
"""
from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.embed import images
from curate.methods.hints import BatchSize, Cpus, Device, Gpus
from curate.methods.models import (
    library_logs_to_debug,
    load_sentence_transformer,
    package_model_dir,
    sha256_of,
)
from curate.stage import Resources, Stage

_ARROW = {"float16": pa.float16(), "float32": pa.float32()}
HUB_HINT = ("weights must be a local checkpoint path; nothing is fetched from a hub "
            "(use random_init: true for plumbing tests)")


class Embed(Stage):
    """Embeddings of a text or image column from a local open_clip or sentence-transformers model (GPU when
    the worker has one): `<name>.vector` for later stages (semdedup, dbp, sens), L2-normalised, kept out of
    the manifest. docs/methods/embed.md has the details."""

    type = "embed"
    version = "1"
    data_outputs = frozenset({"vector"})

    # Weights are keyed by their content (weights_sha256, in depends_on), not by where they lie.
    unkeyed = frozenset({"weights", "package", "image_root", "device", "batch_size", "decode_workers", "cpus", "gpus"})

    def __init__(self, name: Annotated[str | None, Field(description="the stage's name, the prefix of its columns "
                                                                    "(default: embed_<modality>)")] = None,
                 backend: Annotated[Literal["open_clip", "sentence_transformers"],
                                    Field(description="the encoder library")] = "open_clip",
                 modality: Annotated[Literal["image", "text"], Field(description="what is embedded")] = "text",
                 text_column: Annotated[str, Field(min_length=1, description="modality text: the text "
                                                                            "column")] = "caption",
                 image_column: Annotated[str, Field(min_length=1, description="modality image: the column of "
                                                                             "image bytes (or paths under "
                                                                             "image_root)")] = "image",
                 model: Annotated[str | None, Field(description="open_clip: a model config name (e.g. ViT-B-32) "
                                                                "or a local JSON config")] = None,
                 weights: Annotated[str | None, Field(description="a local checkpoint file or folder (never "
                                                                  "fetched from a hub)")] = None,
                 package: Annotated[str | None, Field(description="an installed package shipping the weights "
                                                                  "in its `model` folder (instead of "
                                                                  "weights)")] = None,
                 random_init: Annotated[bool, Field(description="random weights, for plumbing tests")] = False,
                 image_root: Annotated[str | None, Field(description="image paths in the column are read under "
                                                                     "this folder (default: the column holds "
                                                                     "bytes)")] = None,
                 device: Device = "auto", batch_size: BatchSize = None,
                 decode_workers: Annotated[int | None, Field(ge=1, description="image decoding threads (default: "
                                                                               "the worker's CPUs)")] = None,
                 alpha_background: Annotated[str | None, Field(description="colour that transparent images are "
                                                                           "flattened onto")] = None,
                 max_pixels: Annotated[int, Field(ge=1, description="larger images are errors "
                                                                    "(image_too_large)")] = images.DEFAULT_MAX_PIXELS,
                 vector_dtype: Annotated[Literal["float16", "float32"],
                                         Field(description="how vectors are stored: float16 (half the disk; "
                                                           "cosines within ~1e-3) or float32 (exact)")] = "float16",
                 cpus: Cpus = 1.0, gpus: Gpus = None):
        super().__init__(name or f"embed_{modality}")
        if backend == "sentence_transformers" and modality != "text":
            raise ConfigError("embed: sentence_transformers encodes text only")
        self.backend, self.modality, self.device = backend, modality, device
        self.text_column, self.image_column = text_column, image_column
        self.model, self.random_init = model, random_init
        self.image_root = image_root
        self.batch_size, self.decode_workers = batch_size, decode_workers
        self.alpha_background, self.max_pixels = alpha_background, max_pixels
        self.cpus, self.gpus, self.vector_dtype = cpus, gpus, vector_dtype
        # One GPU per worker unless told otherwise (0.25-0.5 suits ViT-B/32); the Ray executor runs
        # the workers on CPU when the cluster has no GPU.
        self.resources = Resources(cpus=cpus, gpus=(0.0 if device == "cpu" else 1.0) if gpus is None else gpus,
                                   gpus_optional=device == "auto" and gpus is None)
        self.weights, self.package = weights, package
        self._weights_path = _local_weights(self.name, weights, package, random_init)
        if backend == "open_clip":
            _check_open_clip_model(self.name, model)
        # (device: 'cuda' is checked in `setup`, on the worker that runs it: a CPU-only driver, the usual Ray
        # head, must accept a config meant for its GPU workers)
        self._encoder: Any = None

    # --- declarations -------------------------------------------------------------------------
    @property
    def input_column(self) -> str:
        return self.image_column if self.modality == "image" else self.text_column

    @property
    def weights_path(self) -> str | None:
        """The local weights: `weights`, or the model folder `package` ships (None with random_init alone)."""
        return self._weights_path

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input_column,)

    @cached_property
    def weights_hash(self) -> str | None:
        return sha256_of(Path(self.weights_path)) if self.weights_path else None

    @cached_property
    def dim(self) -> int:
        if self.backend == "open_clip":
            return int(_open_clip_config(self.model)["embed_dim"])
        # Read from the model folder when it says it plainly: loading the model (torch, transformers) only to
        # learn the vector width cost a policy-only re-run most of its seconds, at config load.
        return _declared_dim(self.weights_path) or load_sentence_transformer(self.weights_path, "cpu").get_embedding_dimension()

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        shape = ({"width": pa.int32(), "height": pa.int32()} if self.modality == "image"
                 else {"n_tokens": pa.int32(), "truncated": pa.bool_()})
        return {**shape, "random_init": pa.bool_(), "vector": pa.list_(_ARROW[self.vector_dtype], self.dim)}

    def keyed_params(self) -> dict[str, Any]:
        keyed = super().keyed_params()
        if keyed.get("vector_dtype") == "float16":  # the default keeps the keys runs had before the parameter
            del keyed["vector_dtype"]
        return keyed

    def depends_on(self) -> dict[str, Any]:
        return {"weights_sha256": self.weights_hash}

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        if self.modality == "image" and self.image_root is None and not pa.types.is_binary(type) \
                and not pa.types.is_large_binary(type):
            return f"is {type}; image bytes must be binary (or give image_root for a column of paths)"
        if (self.modality == "text" or self.image_root) and not (
                pa.types.is_string(type) or pa.types.is_large_string(type) or pa.types.is_null(type)):
            return f"is {type}; needs a string"
        return None

    def file_metadata(self) -> dict[str, str]:
        # clip_score reads these from its upstream stages (check_upstream) to refuse vectors of two models.
        return {"backend": self.backend, "modality": self.modality,
                "model": str(self.model or self.weights_path), "dim": str(self.dim),
                "weights_sha256": str(self.weights_hash), "random_init": str(self.random_init).lower()}

    # --- work ---------------------------------------------------------------------------------
    def setup(self, artifact: pa.Table | None) -> None:
        import socket

        import torch

        here = socket.gethostname()
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"embed {self.name!r}: device 'cuda' but no GPU is visible on worker host {here!r}; "
                              f"use device: auto")
        if self.weights_path is not None and not Path(self.weights_path).exists():
            raise ConfigError(f"embed {self.name!r}: weights {self.weights_path!r} not found on worker host {here!r} "
                              f"(every node needs them at the same path); {HUB_HINT}")
        device = "cuda" if self.device != "cpu" and torch.cuda.is_available() else "cpu"
        if self.backend == "open_clip":
            self._encoder = OpenClipEncoder(self, device)
        else:
            self._encoder = SentenceTransformerEncoder(self, device)

    def worker_info(self) -> dict[str, Any]:
        enc = self._encoder
        info = {"device": enc.device, "decode_s": round(enc.decode_s, 4), "forward_s": round(enc.forward_s, 4)}
        enc.decode_s = enc.forward_s = 0.0
        return info

    def score(self, batch: pa.Table) -> pa.Table:
        values = batch.column(self.input_column).to_pylist()
        n = len(values)
        vectors = np.zeros((n, self.dim), np.float32)
        errors: list[str | None] = [None] * n
        extra: dict[str, list] = {k: [None] * n for k in self.outputs if k not in ("random_init", "vector")}
        if self.modality == "image":
            root = Path(self.image_root) if self.image_root else None
            rows = self._encoder.embed_images(values, root, vectors, errors, extra)
        else:
            rows = self._encoder.embed_texts(values, vectors, errors, extra)
        norms = np.linalg.norm(vectors, axis=1)
        for i in rows:
            if not np.isfinite(norms[i]) or norms[i] == 0:
                errors[i] = "nonfinite_embedding: the model returned a non-finite or zero vector"
        ok = np.array([e is None for e in errors])
        unit = (vectors / np.where(ok, norms, 1.0)[:, None]).astype(self.vector_dtype)
        flat = pa.array(unit.reshape(-1), _ARROW[self.vector_dtype])
        vector = pa.FixedSizeListArray.from_arrays(flat, self.dim, mask=pa.array(~ok))
        out = {k: pa.array([v if ok[i] else None for i, v in enumerate(col)], self.outputs[k])
               for k, col in extra.items()}
        return pa.table({**out, "random_init": pa.array([self.random_init] * n, pa.bool_()), "vector": vector,
                         "error": pa.array(errors, pa.string())})


def _local_weights(name: str, weights: str | None, package: str | None, random_init: bool) -> str | None:
    """The local weights path: `weights`, or the model folder `package` ships; None only with random_init."""
    if package and weights:
        raise ConfigError("embed: give `weights` or `package`, not both")
    path = str(package_model_dir(package)) if package else weights
    if path is None and not random_init:
        raise ConfigError(f"embed {name!r}: no `weights` given; {HUB_HINT}")
    if path is not None and not Path(path).exists():
        raise ConfigError(f"embed {name!r}: weights {path!r} not found; {HUB_HINT}")
    return path


def _check_open_clip_model(name: str, model: str | None) -> None:
    """ConfigError unless `model` names an open_clip config (built-in or local JSON) that needs no hub."""
    if not model:
        raise ConfigError("embed: open_clip needs `model` (a config name like ViT-B-32, or a local JSON config)")
    text_cfg = _open_clip_config(model).get("text_cfg", {})
    hub = {k: v for k, v in text_cfg.items() if k in ("hf_model_name", "hf_tokenizer_name") and v}
    if hub:  # open_clip would build these text towers and tokenizers from the hub
        raise ConfigError(f"embed {name!r}: open_clip model {model!r} takes its text tower or tokenizer "
                          f"from Hugging Face ({hub}), which needs the hub; use a config with open_clip's own "
                          f"text tower and tokenizer (e.g. ViT-B-32) or a local JSON config")


def _open_clip_name(model: str) -> str:
    """The open_clip model name, registering a local JSON config first."""
    import open_clip

    if model.endswith(".json"):
        open_clip.add_model_config(model)
        return Path(model).stem
    return model


def _open_clip_config(model: str) -> dict:
    import open_clip

    model = _open_clip_name(model)
    cfg = open_clip.get_model_config(model)
    if cfg is None:
        raise ConfigError(f"embed: unknown open_clip model {model!r}; a built-in name or a local JSON config")
    return cfg


PLAIN_MODULES = {"sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                 "sentence_transformers.models.Normalize"}


def _declared_dim(folder: str | None) -> int | None:
    """A sentence-transformers folder's vector width from its files: a transformer, one pooling mode and a
    normalisation give the pooling's `word_embedding_dimension`. None when anything else could change it (a
    Dense layer, several pooling modes concatenated): the caller then loads the model and asks it."""
    import json

    try:
        modules = json.loads((Path(folder) / "modules.json").read_text())
        if not {m["type"] for m in modules} <= PLAIN_MODULES:
            return None
        pooling = next(m for m in modules if m["type"].endswith(".Pooling"))
        config = json.loads((Path(folder) / pooling["path"] / "config.json").read_text())
    except (TypeError, OSError, ValueError, KeyError, StopIteration):
        return None
    modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v is True]
    dim = config.get("word_embedding_dimension")
    return int(dim) if len(modes) == 1 and isinstance(dim, int) else None


class OpenClipEncoder:
    def __init__(self, stage: Embed, device: str):
        import open_clip
        import torch

        name = _open_clip_name(stage.model)
        torch.manual_seed(0)  # random_init must give the same weights in every worker
        with library_logs_to_debug("open_clip"):
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(
                name, pretrained=stage.weights_path, device=device)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(name)
        self.stage, self.device, self.torch = stage, device, torch
        self.batch = stage.batch_size or (256 if device == "cuda" else 32)
        self.workers = stage.decode_workers or max(1, int(stage.resources.cpus))
        self.decode_s = self.forward_s = 0.0

    def _forward(self, fn, tensor):
        """Vectors for a batch; on CUDA out-of-memory, the batch is halved once."""
        t0 = time.perf_counter()
        try:
            return self._forward_halving(fn, tensor)
        finally:
            self.forward_s += time.perf_counter() - t0

    def _forward_halving(self, fn, tensor):
        try:
            return self._forward_once(fn, tensor)
        except self.torch.cuda.OutOfMemoryError:
            if len(tensor) < 2:
                raise
            self.torch.cuda.empty_cache()
            half = len(tensor) // 2
            return np.concatenate([self._forward_once(fn, tensor[:half]), self._forward_once(fn, tensor[half:])])

    def _forward_once(self, fn, tensor):
        torch = self.torch
        with torch.inference_mode():
            if self.device == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    return fn(tensor.pin_memory().to(self.device, non_blocking=True)).float().cpu().numpy()
            return fn(tensor).float().numpy()

    def _load(self, chunk, root):
        t0 = time.perf_counter()
        loaded = images.load_all(chunk, self.preprocess, self.workers, root, self.stage.max_pixels,
                                 self.stage.alpha_background)
        self.decode_s += time.perf_counter() - t0  # on the prefetch thread: overlaps forward_s
        return loaded

    def embed_images(self, values, root, vectors, errors, extra) -> list[int]:
        """Decode batch i+1 on a thread while batch i runs through the model."""
        from concurrent.futures import ThreadPoolExecutor

        done = []
        starts = list(range(0, len(values), self.batch))
        with ThreadPoolExecutor(1) as prefetch:
            pending = prefetch.submit(self._load, values[:self.batch], root) if starts else None
            for k, start in enumerate(starts):
                loaded = pending.result()
                if k + 1 < len(starts):
                    nxt = starts[k + 1]
                    pending = prefetch.submit(self._load, values[nxt:nxt + self.batch], root)
                rows = []
                for j, (_, w, h, err) in enumerate(loaded):
                    i = start + j
                    errors[i] = err
                    if err is None:
                        extra["width"][i], extra["height"][i] = w, h
                        rows.append(i)
                if rows:
                    stack = self.torch.stack([loaded[i - start][0] for i in rows])
                    vectors[rows] = self._forward(self.model.encode_image, stack)
                    done += rows
        return done

    def embed_texts(self, values, vectors, errors, extra) -> list[int]:
        rows = _valid_texts(values, errors)
        context = self.tokenizer.context_length
        for i in rows:
            n = len(self.tokenizer.encode(values[i])) + 2  # with the start and end tokens
            extra["n_tokens"][i], extra["truncated"][i] = n, n > context
        for start in range(0, len(rows), self.batch):
            part = rows[start:start + self.batch]
            tokens = self.tokenizer([values[i] for i in part])
            vectors[part] = self._forward(self.model.encode_text, tokens)
        return rows


class SentenceTransformerEncoder:
    def __init__(self, stage: Embed, device: str):
        self.model = load_sentence_transformer(stage.weights_path, device)
        self.batch = stage.batch_size or (256 if device == "cuda" else 32)
        self.device, self.decode_s, self.forward_s = device, 0.0, 0.0

    def embed_texts(self, values, vectors, errors, extra) -> list[int]:
        rows = _valid_texts(values, errors)
        if not rows:
            return rows
        texts = [values[i] for i in rows]
        limit = self.model.max_seq_length
        lengths = [len(ids) for ids in self.model.tokenizer(texts, add_special_tokens=True)["input_ids"]]
        for i, n in zip(rows, lengths):
            extra["n_tokens"][i], extra["truncated"][i] = n, n > limit
        t0 = time.perf_counter()
        vectors[rows] = self.model.encode(texts, batch_size=self.batch, convert_to_numpy=True,
                                          normalize_embeddings=False, show_progress_bar=False)
        self.forward_s += time.perf_counter() - t0
        return rows


def _valid_texts(values: list, errors: list) -> list[int]:
    rows = []
    for i, v in enumerate(values):
        if not isinstance(v, str):
            errors[i] = "empty_text: text is null"
        elif not v.strip():
            errors[i] = "empty_text: text is empty or whitespace"
        else:
            rows.append(i)
    return rows
