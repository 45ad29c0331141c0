"""SemDeDup's pairwise step: for rows in cluster order, the largest cosine to any *earlier* row.

M_j = max_{i<j} e_i . e_j and its argmax, computed in (tile x tile) blocks so memory is O(tile^2)
whatever the cluster size. Blocks are float32 with exact (IEEE) accumulation: TF32 or fp16 rounding
(~1e-3) would swamp the small epsilons SemDeDup uses. Runs on a CUDA device when one is given.
"""
from __future__ import annotations

import numpy as np


def max_sim_prev(e: np.ndarray, tile: int = 4096, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(M float32, argmax int64) per row of the ordered unit vectors `e`; M = -1 and argmax = -1 for row 0."""
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if device != "cpu":
        return _max_sim_prev_torch(e, tile, device)
    e = np.ascontiguousarray(e, dtype=np.float32)
    n = len(e)
    best = np.full(n, -np.inf, np.float32)
    arg = np.full(n, -1, np.int64)
    for a in range(0, n, tile):
        b = min(a + tile, n)
        for i0 in range(0, b, tile):            # earlier blocks, then the diagonal block
            i1 = min(i0 + tile, b)
            s = e[a:b] @ e[i0:i1].T             # rows j in [a, b), columns i in [i0, i1)
            if i1 > a:                          # mask i >= j inside the diagonal block
                s[np.arange(i0, i1)[None, :] >= np.arange(a, b)[:, None]] = -np.inf
            j = np.argmax(s, axis=1)
            m = s[np.arange(b - a), j]
            better = m > best[a:b]              # strict: the earliest i wins ties, as a single argmax would
            best[a:b] = np.where(better, m, best[a:b])
            arg[a:b] = np.where(better, i0 + j, arg[a:b])
    return _exact(e, arg), arg


def _exact(e: np.ndarray, arg: np.ndarray) -> np.ndarray:
    """M recomputed row by row for the chosen pairs, so it does not depend on the tiling (GEMM shapes
    round differently in the last bit)."""
    m = np.full(len(e), -1.0, np.float32)
    has = arg >= 0
    m[has] = np.einsum("ij,ij->i", e[has], e[arg[has]])
    return m


def _max_sim_prev_torch(e: np.ndarray, tile: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.from_numpy(np.ascontiguousarray(e, dtype=np.float32)).to(device)
    n = len(x)
    best = torch.full((n,), -float("inf"), device=device)
    arg = torch.full((n,), -1, dtype=torch.int64, device=device)
    for a in range(0, n, tile):
        b = min(a + tile, n)
        for i0 in range(0, b, tile):
            i1 = min(i0 + tile, b)
            s = x[a:b] @ x[i0:i1].T
            if i1 > a:
                mask = torch.arange(i0, i1, device=device)[None, :] >= torch.arange(a, b, device=device)[:, None]
                s = s.masked_fill(mask, -float("inf"))
            m, j = s.max(dim=1)
            better = m > best[a:b]
            best[a:b] = torch.where(better, m, best[a:b])
            arg[a:b] = torch.where(better, i0 + j, arg[a:b])
    arg = arg.cpu().numpy()
    return _exact(np.ascontiguousarray(e, dtype=np.float32), arg), arg
