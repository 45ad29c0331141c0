"""WFPP: word-frequency-based image-text pair pruning (stage `wfpp`)."""
from curate.methods.wfpp.stage import WFPP

__all__ = ["WFPP"]
