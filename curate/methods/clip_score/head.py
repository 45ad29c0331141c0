"""`head`: a small model (a linear layer or an MLP) applied to an embedding column, such as the LAION aesthetic
predictor (an MLP on L2-normalised CLIP ViT-L/14 vectors) or a CLIP-based NSFW classifier.

The weights are a local file, never fetched: safetensors, or a torch state dict read with
`torch.load(weights_only=True)` (no pickled code runs). The layers are the file's 2-D `*.weight` tensors in
key order (numbers in keys compared as numbers: `layers.10` after `layers.2`), each with its `*.bias` when
present; consecutive layers must chain (one's output width is the next one's input width). Dropout layers
have no tensors and change nothing at inference, so LAION's aesthetic MLP loads as it is. Scores are numpy
float32 matrix products: no GPU and no torch at scoring time.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.errors import ConfigError
from curate.methods.hints import StageName
from curate.methods.models import sha256_of
from curate.stage import Stage
from kernels.vectors import matrix, vector_type_problem

_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Head(Stage):
    """Scores from a linear layer or MLP over an embedding column; output columns named by the user."""

    type = "head"
    version = "1"
    unkeyed = frozenset({"weights"})  # keyed by content (weights_sha256 in depends_on), not by where they lie

    def __init__(self,
                 embedding: Annotated[str, Field(min_length=1, description="the vector column, like "
                                                                           "'embed_image.vector'")],
                 weights: Annotated[str, Field(min_length=1, description="a local .safetensors file or a torch "
                                                                         "state dict (.pt/.pth/.bin)")],
                 names: Annotated[list[str], Field(min_length=1, description="a column name for each output of "
                                                                             "the last layer, e.g. [aesthetic]")],
                 hidden_activation: Annotated[Literal["none", "relu", "gelu"],
                                              Field(description="between layers (LAION's aesthetic MLP: none)")]
                 = "relu",
                 activation: Annotated[Literal["none", "sigmoid", "softmax"],
                                       Field(description="on the last layer: sigmoid for a probability, softmax "
                                                         "over the outputs")] = "none",
                 normalize: Annotated[bool, Field(description="L2-normalise each vector first (as CLIP heads "
                                                              "expect)")] = True,
                 name: StageName = None):
        super().__init__(name)
        bad = [o for o in names if not _OUTPUT_NAME.match(o) or o == "error"]
        if bad or len(set(names)) != len(names):
            raise ConfigError(f"head: names must be distinct, of letters, digits and _ (not 'error'); got {names}")
        if activation == "softmax" and len(names) < 2:
            raise ConfigError("head: softmax needs two or more outputs (use sigmoid for one probability)")
        if not Path(weights).expanduser().is_file():
            raise ConfigError(f"head {self.name!r}: no weights file at {weights!r} (a local file; nothing is "
                              f"fetched from a hub)")
        self.embedding, self.weights, self.names = embedding, weights, list(names)
        self.hidden_activation, self.activation, self.normalize = hidden_activation, activation, normalize

    # --- declarations -------------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.embedding,)

    @property
    def outputs(self) -> dict[str, pa.DataType]:
        return {**dict.fromkeys(self.names, pa.float32()), "error": pa.string()}

    @cached_property
    def layers(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(weight (out, in), bias or None) per layer, read from the file and checked to chain."""
        layers = _layers(Path(self.weights).expanduser(), self.name)
        if layers[-1][0].shape[0] != len(self.names):
            raise ConfigError(f"head {self.name!r}: the last layer of {self.weights} has "
                              f"{layers[-1][0].shape[0]} outputs but `names` has {len(self.names)} "
                              f"({self.names})")
        return layers

    @property
    def width(self) -> int:
        """The input width the weights take."""
        return int(self.layers[0][0].shape[1])

    def depends_on(self) -> dict[str, Any]:
        return {"weights_sha256": sha256_of(Path(self.weights).expanduser())}

    def _width_problem(self, t: pa.DataType, where: str) -> str | None:
        problem = vector_type_problem(t)
        if problem:
            return problem
        if pa.types.is_fixed_size_list(t) and t.list_size != self.width:
            return (f"{where} holds vectors of width {t.list_size}, but the weights {self.weights} take width "
                    f"{self.width}: the head was trained on another embedding model")
        return None

    def check_input(self, column: str, type: pa.DataType) -> str | None:
        return self._width_problem(type, "is a column that")

    def check_upstream(self, producers: Mapping[str, Stage]) -> str | None:
        stage = producers.get(self.embedding)
        if stage is None:
            self.layers  # noqa: B018 (read now: a bad file is refused when the config is built)
            return None  # a dataset column: checked against the shards at plan time (check_input)
        t = stage.outputs.get(self.embedding.split(".", 1)[1])
        return None if t is None else self._width_problem(t, f"column {self.embedding!r} (stage {stage.name!r})")

    # --- work ---------------------------------------------------------------------------------
    def score(self, batch: pa.Table) -> pa.Table:
        x, errors = matrix(batch.column(self.embedding), self.width)
        if self.normalize:
            norm = np.linalg.norm(x, axis=1)
            errors[(errors == None) & (norm == 0)] = "invalid_embedding: zero vector"  # noqa: E711
            x = x / np.where(norm > 0, norm, 1.0)[:, None]
        y = forward(x, self.layers, self.hidden_activation, self.activation)
        ok = errors == None  # noqa: E711 (elementwise on an object array)
        cols = {o: pa.array(y[:, k], pa.float32(), mask=~ok) for k, o in enumerate(self.names)}
        return pa.table({**cols, "error": pa.array(errors.tolist(), pa.string())})


def forward(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray | None]], hidden: str, last: str) -> np.ndarray:
    """The head on rows of x, float32: each layer x @ W.T + b, `hidden` between layers, `last` at the end."""
    for k, (w, b) in enumerate(layers):
        x = x @ w.T
        if b is not None:
            x = x + b
        if k < len(layers) - 1:
            x = _ACT[hidden](x)
    if last == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if last == "softmax":
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return x


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # torch's default (exact) GELU, not the tanh approximation

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


_ACT = {"none": lambda x: x, "relu": lambda x: np.maximum(x, 0), "gelu": _gelu}


def _natural(key: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def _layers(path: Path, name: str) -> list[tuple[np.ndarray, np.ndarray | None]]:
    tensors = _read(path, name)
    weights = sorted((k for k, v in tensors.items() if k.endswith("weight") and v.ndim == 2), key=_natural)
    if not weights:
        raise ConfigError(f"head {name!r}: {path} holds no 2-D `*.weight` tensor (keys: {sorted(tensors)[:8]}); "
                          f"a head is one or more linear layers")
    layers = []
    for k in weights:
        w = tensors[k].astype(np.float32)
        b = tensors.get(k[: -len("weight")] + "bias")
        if b is not None and b.shape != (w.shape[0],):
            raise ConfigError(f"head {name!r}: {path}: bias of {k!r} has shape {b.shape}, expected ({w.shape[0]},)")
        if layers and layers[-1][0].shape[0] != w.shape[1]:
            raise ConfigError(f"head {name!r}: {path}: layer {k!r} takes width {w.shape[1]} but the layer before "
                              f"gives {layers[-1][0].shape[0]}; the layers do not chain")
        layers.append((w, None if b is None else b.astype(np.float32)))
    return layers


def _read(path: Path, name: str) -> dict[str, np.ndarray]:
    """The file's tensors as numpy arrays: safetensors by its header, else a torch state dict (weights only)."""
    with open(path, "rb") as f:
        head = f.read(9)
    is_safetensors = len(head) >= 9 and head[8:9] == b"{"  # an 8-byte header length, then JSON
    try:
        if is_safetensors:
            from safetensors.numpy import load_file

            return dict(load_file(str(path)))
        import torch

        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
            state = state["state_dict"]
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"holds a {type(state).__name__}, not a mapping of names to tensors")
        return {str(k): v.detach().float().numpy() for k, v in state.items()}
    except Exception as e:  # a file we cannot read in any way is a config error, named with the reason
        raise ConfigError(f"head {name!r}: cannot read weights {path}: not a safetensors file or a torch state "
                          f"dict of tensors ({type(e).__name__}: {str(e)[:200]})") from e
