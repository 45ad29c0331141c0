"""k-means for the clustering stages (faiss), and the nearest-centroid assignment."""
from __future__ import annotations

import faiss
import numpy as np

# Assignment works through the rows in blocks so its memory stays bounded for any shard size.
_BLOCK = 65_536


def fit_kmeans(x: np.ndarray, k: int, niter: int, seed: int, spherical: bool = True) -> np.ndarray:
    """k centroids (float32, unit length when spherical) of the rows of x, deterministic for a seed.

    `x` is the whole training sample: faiss's own subsampling is disabled so the sample the caller
    chose (uniform, keyed on tie keys) is the one used.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if k < 1 or k > len(x):
        raise ValueError(f"k-means: k={k} with {len(x)} training rows")
    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, spherical=spherical, verbose=False,
                      max_points_per_centroid=max(1, -(-len(x) // k)), min_points_per_centroid=1)
    km.train(x)
    c = km.centroids.astype(np.float32)
    if spherical:
        c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return c


def nearest(x: np.ndarray, centroids: np.ndarray, metric: str = "ip") -> tuple[np.ndarray, np.ndarray]:
    """(cluster int32, score float32) per row: the largest inner product (`ip`) or the smallest squared
    distance (`l2`). The score of each row is recomputed row by row so that identical rows get
    identical scores wherever they sit in a batch (BLAS blocking can differ by row position)."""
    n = len(x)
    cluster = np.empty(n, np.int32)
    score = np.empty(n, np.float32)
    sq = (centroids * centroids).sum(1)[None, :] if metric != "ip" else None
    for s in range(0, n, _BLOCK):  # (the row-by-row score per block: its centroid rows never all sit in memory)
        xb = x[s:s + _BLOCK]
        if metric == "ip":
            cb = np.argmax(xb @ centroids.T, axis=1)
            score[s:s + _BLOCK] = np.einsum("ij,ij->i", xb, centroids[cb])
        else:
            cb = np.argmin(sq - 2.0 * (xb @ centroids.T), axis=1)
            diff = xb - centroids[cb]
            score[s:s + _BLOCK] = np.einsum("ij,ij->i", diff, diff)
        cluster[s:s + _BLOCK] = cb
    return cluster, score
