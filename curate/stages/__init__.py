"""Built-in stages; importing this module registers them for configs."""
from curate.stages import concept_clusters, el2n, embed, icc, semdedup, sensitivity, wfpp, zipfit  # noqa: F401
from curate.join import stage as _autofj  # noqa: F401  (registers `autofj`)
