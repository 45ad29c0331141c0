"""Built-in stages; importing this module registers them for configs."""
from curate.stages import embed, icc, wfpp  # noqa: F401
