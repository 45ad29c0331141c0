"""EL2N / GraNd proxy models: feature matrices, the proxy network, its training, and per-row scores.

The math lives here so that it is testable on plain arrays (no engine, no files); `el2n.py` wires it into
a stage. Everything a row's score depends on is the row itself and the proxy's weights: scoring runs in
eval mode, in float64, with per-example (unreduced) losses, so a row's scores do not depend on its
batch-mates or the batch size.
"""
from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from kernels import vectors

INVALID = "invalid_features"
# Full GraNd holds one gradient per row and parameter; chunk rows so that this stays near 256 MB (float64).
GRAND_CHUNK_ELEMENTS = 32 * 1024 * 1024

ProxySpec = str | nn.Module | Callable[[int, int], nn.Module]


# --------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------
def is_feature_type(t: pa.DataType) -> bool:
    return vectors.is_vector_type(t)


def feature_matrix(column: pa.Array | pa.ChunkedArray, d: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float32 features and per-row errors (`invalid_features: ...`); see kernels.vectors.matrix."""
    return vectors.matrix(column, d, invalid=INVALID)


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of the fit sample (float64); constant features get std 1."""
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.astype(np.float64).std(axis=0)
    return mean, np.where(std > 1e-8, std, 1.0)


# --------------------------------------------------------------------------------------------------
# The proxy network
# --------------------------------------------------------------------------------------------------
def mlp(d: int, hidden: list[int], n_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """d -> hidden... (ReLU, optional dropout) -> n_classes; no hidden layers is multinomial regression."""
    layers: list[nn.Module] = []
    width = d
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def build_proxy(spec: ProxySpec, d: int, n_classes: int, hidden: list[int], dropout: float, seed: int) -> nn.Module:
    """A freshly initialised proxy for one run (seeded; the global torch RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if spec == "mlp":
            return mlp(d, hidden, n_classes, dropout)
        if isinstance(spec, nn.Module):
            model = copy.deepcopy(spec)
            for m in model.modules():  # a new, independent init per run
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            return model
        if callable(spec):
            model = spec(d, n_classes)
            if not isinstance(model, nn.Module):
                raise TypeError(f"el2n: the proxy factory returned {type(model).__name__}, not a torch.nn.Module")
            return model
    raise TypeError(f"el2n: proxy must be 'mlp', a torch.nn.Module or a factory (d, n_classes) -> Module; got {spec!r}")


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last nn.Linear: its input is h for last-layer GraNd (it must produce the logits)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError("el2n: last-layer GraNd needs a proxy whose final layer is an nn.Linear")
    return linears[-1]


def to_bytes(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def load_state(model: nn.Module, data: bytes) -> nn.Module:
    model.load_state_dict(torch.load(io.BytesIO(data), weights_only=True))
    return model


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    checkpoints: dict[int, bytes]   # step -> state_dict bytes
    train_acc: float                # accuracy on the fit sample at the last checkpoint (eval mode)
    steps: int


def train_proxy(model: nn.Module, x: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray,
                checkpoints: list[int], batch_size: int, lr: float, seed: int, optimizer: str = "adam",
                weight_decay: float = 0.0) -> TrainResult:
    """Train on (x, y) with shuffled mini-batches and save the weights after each step in `checkpoints`.

    x stays in memory as stored (float32); each batch is standardised when it is drawn. Step 0 is the
    initialisation. Data order comes from a generator seeded with `seed`, dropout from the global RNG
    seeded the same way inside a fork, so runs are reproducible and independent of each other.
    """
    n = len(x)
    mean_t = torch.as_tensor(mean, dtype=torch.float32)
    std_t = torch.as_tensor(std, dtype=torch.float32)
    xt, yt = torch.tensor(np.asarray(x, np.float32)), torch.tensor(np.asarray(y, np.int64))
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:  # the paper's recipe
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    saved: dict[int, bytes] = {}
    last = max(checkpoints)
    gen = torch.Generator().manual_seed(seed)
    step, perm, pos = 0, torch.randperm(n, generator=gen), 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        while True:
            if step in checkpoints:
                saved[step] = to_bytes(model)
            if step >= last:
                break
            if pos >= n:  # a new epoch: a new order
                perm, pos = torch.randperm(n, generator=gen), 0
            idx = perm[pos:pos + batch_size]
            pos += batch_size
            model.train()
            logits = model((xt[idx] - mean_t) / std_t)
            loss = nn.functional.cross_entropy(logits, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    load_state(model, saved[last])
    acc = accuracy(model, x, y, mean, std)
    return TrainResult(saved, acc, last)


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray,
             chunk: int = 8192) -> float:
    """Eval-mode accuracy of a model on standardised features."""
    model.eval()
    if not len(x):
        return float("nan")
    right = 0
    for i in range(0, len(x), chunk):
        xb = (torch.tensor(np.asarray(x[i:i + chunk], np.float32)) - torch.as_tensor(mean, dtype=torch.float32)) \
            / torch.as_tensor(std, dtype=torch.float32)
        right += int((model(xb).argmax(1).numpy() == y[i:i + chunk]).sum())
    return right / len(x)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))


# --------------------------------------------------------------------------------------------------
# Scores of one proxy (float64, eval mode)
# --------------------------------------------------------------------------------------------------
def el2n_from_logits(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(EL2N = ||softmax(z) - onehot(y)||, CE, p - onehot) per row; softmax of z - max z."""
    p = torch.softmax(z - z.max(dim=1, keepdim=True).values, dim=1)
    err = p.clone()
    err[torch.arange(len(y)), y] -= 1.0
    ce = torch.logsumexp(z, dim=1) - z.gather(1, y[:, None])[:, 0]
    return torch.linalg.vector_norm(err, dim=1), ce, err


def full_grand(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk_elements: int = GRAND_CHUNK_ELEMENTS) -> torch.Tensor:
    """Per-example ||d CE(f(w; x_i), y_i) / dw|| over all trainable parameters (vmap of grad, no reduction)."""
    trainable = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    frozen = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}
    buffers = dict(model.named_buffers())
    n_params = sum(v.numel() for v in trainable.values())

    def loss(params: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        z = functional_call(model, ({**params, **frozen}, buffers), (xi[None],))
        return nn.functional.cross_entropy(z, yi[None], reduction="sum")  # one example: its own loss

    per_row = vmap(grad(loss), in_dims=(None, 0, 0))
    rows = max(1, chunk_elements // max(n_params, 1))
    out = []
    for i in range(0, len(x), rows):
        g = per_row(trainable, x[i:i + rows], y[i:i + rows])
        out.append(torch.sqrt(sum(v.flatten(1).pow(2).sum(1) for v in g.values())))
    return torch.cat(out) if out else torch.zeros(0, dtype=x.dtype)


@dataclass
class RunScores:
    el2n: np.ndarray      # (n,) float64, NaN where the logits were not finite
    loss: np.ndarray
    grand: np.ndarray | None


def score_run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, grand: str = "off",
              grand_model: nn.Module | None = None) -> RunScores:
    """EL2N, CE and (optionally) GraNd of rows x (standardised, float64) under one proxy in eval mode."""
    model.eval()
    with torch.no_grad():
        z = model(x)
        finite = torch.isfinite(z).all(dim=1)
        zf = torch.where(finite[:, None], z, torch.zeros_like(z))
        el2n, ce, _ = el2n_from_logits(zf, y)
    nan = torch.tensor(float("nan"), dtype=x.dtype)
    el2n, ce = torch.where(finite, el2n, nan), torch.where(finite, ce, nan)
    g = None
    if grand != "off":
        gm = grand_model if grand_model is not None else model
        gm.eval()
        if grand == "last_layer":
            g = last_layer_grand(gm, x, y)
        else:
            g = full_grand(gm, x, y)
        g = torch.where(finite & torch.isfinite(g), g, nan).numpy()
    return RunScores(el2n.numpy(), ce.numpy(), g)


def last_layer_grand(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Closed form of the last linear layer's gradient norm: ||p - e_y|| * sqrt(1 + ||h||^2) (no bias: ||h||)."""
    layer = last_linear(model)
    seen: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            z = model(x)
    finally:
        hook.remove()
    h = seen[-1].reshape(len(x), -1)
    el2n, _, _ = el2n_from_logits(z, y)
    bias = 1.0 if layer.bias is not None else 0.0
    return el2n * torch.sqrt(bias + h.pow(2).sum(1))


def aggregate(per_run: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std (population, ddof 0) and count over the finite runs of an (R, n) matrix; NaN where none."""
    ok = np.isfinite(per_run)
    count = ok.sum(axis=0)
    safe = np.where(ok, per_run, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = safe.sum(axis=0) / count
        var = np.where(ok, (per_run - mean) ** 2, 0.0).sum(axis=0) / count
    return mean, np.sqrt(var), count


def describe_model(model: nn.Module) -> dict[str, Any]:
    return {"class": type(model).__name__, "parameters": int(sum(p.numel() for p in model.parameters())),
            "shape": [list(p.shape) for p in model.parameters()]}
