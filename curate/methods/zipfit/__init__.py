"""ZIP-FIT: compression-based alignment to a target set (stage `zipfit`)."""
from curate.methods.zipfit.stage import ZipFit

__all__ = ["ZipFit"]
