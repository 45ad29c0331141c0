"""Every public error type, and the warning a renamed name gives. Errors a user can act on derive from CurateError: each message names what is wrong,
where (file, shard, row, column), and what to do; the CLI prints them without a traceback. An InternalError is a
bug in curate, shown with its traceback."""

import warnings


def renamed(old: str, new: str, where: str) -> None:
    """Warn that `old` was renamed `new` (accepted for one release): a FutureWarning, which Python shows users."""
    warnings.warn(f"{where}: {old!r} is renamed {new!r}; the old name still works in this release and will be "
                  f"removed in the next (see CHANGELOG.md)", FutureWarning, stacklevel=3)


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


class StorageError(CurateError):
    """The run directory cannot be written (full disk, read-only, quota): the run stops; finished units stay."""

    fatal = True  # a Failure carrying it stops the run at once instead of being retried


class RunLocked(CurateError):
    """Another live writer holds the run directory."""


class LeaseLost(CurateError):
    """This writer's lease was taken over (its heartbeat stalled past the ttl): it must stop writing."""


class InternalError(Exception):
    """A check of curate's own bookkeeping failed: a bug to report, not something the user did (not a CurateError,
    so the command line shows its traceback)."""


class DamagedFileError(CurateError):
    """A file of a run directory is not what was written (its hash, size or seal differs from its record).

    Inside a run the engine recomputes the file's unit and goes on; readers of a finished run refuse it."""

    def __init__(self, path: object, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple:  # (it travels back from Ray workers)
        return type(self), (self.path, self.problem)
