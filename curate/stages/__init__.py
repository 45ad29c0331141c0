"""Built-in stages: importing this package registers them with curate.stage."""
from curate.stages import wfpp  # noqa: F401
