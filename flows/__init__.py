"""Prefect flows wrapping curate.run."""
