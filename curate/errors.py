"""Errors a user can act on. Each message names what is wrong, where (file, shard, row, column), and what to do."""


class CurateError(Exception):
    """Base class: the CLI prints these as one clear message, without a traceback."""


class ConfigError(CurateError):
    """The config or a stage/policy parameter is wrong."""


class DataError(CurateError):
    """The dataset is unusable as given: missing or mistyped columns, corrupt shards, bad ids."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        shown = self.problems[:20]
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__("the dataset cannot be processed:\n  " + "\n  ".join(shown) + more)


class RunFailed(CurateError):
    """Some shards failed after retries; the others are saved and a re-run picks the failed ones up."""


class DamagedFileError(CurateError):
    """A file of a run directory is not what was written (its hash, size or seal differs from its record).

    Inside a run the engine recomputes the file's unit and goes on; readers of a finished run refuse it."""

    def __init__(self, path: object, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple:  # (it travels back from Ray workers)
        return type(self), (self.path, self.problem)
