"""CLIP score: the cosine between each row's image and caption vectors under one open_clip model (stage and
policy `clip_score`), and small heads on embedding columns (stage `head`)."""
from curate.methods.clip_score.head import Head
from curate.methods.clip_score.policy import ClipScorePolicy
from curate.methods.clip_score.stage import ClipScore

__all__ = ["ClipScore", "ClipScorePolicy", "Head"]
