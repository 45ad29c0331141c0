"""Built-in stages; importing this module registers them for configs."""
from curate.stages import embed, wfpp, zipfit  # noqa: F401
