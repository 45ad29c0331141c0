"""EL2N / GraNd data-pruning scores (stage `el2n`, policy `el2n_keep`)."""
from curate.methods.el2n.policy import El2nKeep
from curate.methods.el2n.stage import EL2N

__all__ = ["EL2N", "El2nKeep"]
