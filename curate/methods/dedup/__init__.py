"""Exact and near-duplicate removal: `exact_dedup`, `minhash_dedup`, `image_hash`, and the `dedup` policy."""
from curate.methods.dedup.exact import ExactDedup
from curate.methods.dedup.image import ImageHash
from curate.methods.dedup.minhash import MinHashDedup
from curate.methods.dedup.policy import Dedup

__all__ = ["Dedup", "ExactDedup", "ImageHash", "MinHashDedup"]
