"""Embedding workers: open_clip and sentence-transformers encoders from local weights (stage `embed`)."""
from curate.methods.embed.stage import Embed

__all__ = ["Embed"]
