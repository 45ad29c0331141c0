"""SemDeDup's pairwise step: for rows in cluster order, the largest cosine to any *earlier* row.

M_j = max_{i<j} e_i . e_j and its argmax, computed in (tile x tile) blocks so memory is O(tile^2)
whatever the cluster size. Blocks are float32 with exact (IEEE) accumulation: TF32 or fp16 rounding
(~1e-3) would swamp the small epsilons SemDeDup uses. Runs on a CUDA device when one is given.
"""
from __future__ import annotations

import numpy as np

# Rows per strip of a diagonal block: the work above a block's diagonal that is computed and masked is
# strip / tile of the block's (a whole block: half of it).
_STRIP = 512


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
    strip = min(tile, _STRIP)
    upper = np.triu(np.ones((strip, strip), bool))  # column i >= row j inside a strip's own square
    for a in range(0, n, tile):
        b = min(a + tile, n)
        for i0 in range(0, a, tile):            # earlier blocks, whole: rows j in [a, b), columns i in [i0, i0 + tile)
            _merge(e[a:b] @ e[i0:i0 + tile].T, i0, best[a:b], arg[a:b])
        for r in range(a, b, strip):            # the diagonal block strip by strip, each strip of rows against the
            r1 = min(r + strip, b)              # block's columns up to its own last row: about half a full block
            s = e[r:r1] @ e[a:r1].T
            s[:, r - a:][upper[:r1 - r, :r1 - r]] = -np.inf
            _merge(s, a, best[r:r1], arg[r:r1])
    return _exact(e, arg), arg


def _merge(s: np.ndarray, i0: int, best: np.ndarray, arg: np.ndarray) -> None:
    """Fold a block of similarities (columns from i0) into the running best and argmax, in place. Strict:
    the earliest i wins ties, as a single argmax over all earlier rows would."""
    j = np.argmax(s, axis=1)
    m = s[np.arange(len(s)), j]
    better = m > best
    best[better] = m[better]
    arg[better] = i0 + j[better]


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
