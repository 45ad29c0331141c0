"""Repo-root conftest: puts the project root on sys.path for `tests.helpers` and `bench`."""
