"""Every public error type lives in curate/errors.py and is exported; bugs are not dressed as user errors."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import curate
from curate import errors

ROOT = Path(curate.__file__).parent


def test_error_types_are_defined_in_errors_py_only_and_exported():
    defined = {}
    for path in ROOT.rglob("*.py"):
        for name in re.findall(r"^class (\w+)\((?:\w+Error|Exception|CurateError|RunFailed)\)", path.read_text(), re.M):
            defined.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
    outside = {k: v for k, v in defined.items() if v != ["errors.py"] and k != "ImageError"}  # (a method's per-row kind)
    assert outside == {}
    for name in ("StorageError", "RunLocked", "LeaseLost", "InternalError", "DataError", "ConfigError", "RunFailed"):
        assert getattr(curate, name) is getattr(errors, name) and name in curate.__all__


def test_an_internal_error_shows_its_traceback_on_the_command_line(monkeypatch, capsys, tmp_path):
    """A failed accounting check is a bug: the CLI must not print it as a one-line user error."""
    from curate import cli

    assert not issubclass(errors.InternalError, errors.CurateError)

    def broken(args):
        raise errors.InternalError("internal accounting error: 3 input rows but 2 in the manifest")

    monkeypatch.setattr(cli, "_summary", broken)
    parser = cli.parser
    monkeypatch.setattr(cli, "parser", lambda command=None: _with(parser(command), broken))
    with pytest.raises(errors.InternalError):
        cli.main(["summary", str(tmp_path)])


def _with(p, func):
    p.set_defaults(func=func)
    for action in p._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(func=func)
    return p
