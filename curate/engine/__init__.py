"""Curate execution engine: planning, keyed storage, executors, progress."""
