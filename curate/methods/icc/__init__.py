"""ICC: image-caption concreteness (stage `icc`)."""
from curate.methods.icc.stage import ICC

__all__ = ["ICC"]
