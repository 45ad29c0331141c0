"""The README's command line, checked against the code and run top to bottom (`make readme-check`).

Every line of the "The command line" block names a command that exists, and every option the parser has
(no undocumented option, no documented option that is gone); each line is then run, in the README's order,
on a small dataset this test builds, with every option it names. Commands that would take long or need what
a test machine lacks are run with `--help` instead, which still checks that they parse (SKIPPED says why);
the options a Ray cluster needs are not passed (OPTIONS_NOT_RUN). Every other `curate ...` command in the
README (examples) must parse. No network: the data is built here and the executor is `local`.
"""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from curate import cli
from testkit.helpers import caption_table, write_shards

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TENNIS = ROOT / "bench" / "data" / "autofj" / "TennisTournament"
SKIPPED = {  # command -> why it runs as `--help` here
    "join": "an Auto-FuzzyJoin fit loads its join extra (numba, ~15 s); tests/cli/test_commands.py runs it",
    "deploy": "it needs a Prefect server and serves until Ctrl-C; tests/flows/test_ui.py runs it",
    "ray": "it starts a Ray left running (seconds, a machine-wide service); tests/engine/test_shared_ray.py runs it",
    "data": "the bundled datasets are built from Debian packages (minutes); tests/data/ builds them",
    "train-classifier": "it trains on files of two classes; tests/methods/test_quality_classifier.py runs it",
}
OPTIONS_NOT_RUN = {"--ray-address": "a Ray cluster", "--workers": "the ray executor (local takes no workers)"}
CONFIG = """name: readme
id_column: id
stages:
  - type: wfpp
    min_count: 1
policies:
  - type: keep_fraction
    column: wfpp.score
    fraction: 0.5
export:
  materialize: true
"""


def command_block() -> list[str]:
    """The README's synopsis lines, continuation lines joined to their command, in order."""
    block = README.split("## The command line", 1)[1].split("```", 2)[1]
    lines: list[str] = []
    for line in block.splitlines():
        if line.startswith("curate "):
            lines.append(line)
        elif line.strip() and lines:
            lines[-1] += " " + line.strip()
    return [re.split(r"\s{3,}(?=[a-z])", line)[0] for line in lines]  # (the description after the synopsis)


def flags(line: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))


def subparsers() -> dict[str, argparse.ArgumentParser]:
    p = cli.parser("join")
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices


def options(sub: argparse.ArgumentParser, command: str) -> set[str]:
    """A command's documented options: not --help, not hidden old names, not the autofj parameters of join
    (the README says `--<any autofj parameter>`; docs/reference.md lists them)."""
    out = set()
    for action in sub._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction) or \
                (command == "join" and action.dest.startswith("p_")):
            continue
        out.update(o for o in action.option_strings if o.startswith("--"))
    return out


def test_the_readme_lists_every_command_with_exactly_its_options():
    lines = command_block()
    commands = [line.split()[1] for line in lines]
    subs = subparsers()
    assert sorted(commands) == sorted(subs), "the README's command list and the CLI's commands differ"
    for line, command in zip(lines, commands):
        assert flags(line) == options(subs[command], command), line


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("readme")
    write_shards(tmp / "data", caption_table(60), 2)
    (tmp / "readme.yaml").write_text(CONFIG)
    return {"tmp": str(tmp), "CONFIG": str(tmp / "readme.yaml"), "PATH|URI": str(tmp / "data"),
            "RUN_DIR": str(tmp / "run"), "SECONDS": "600", "N": "1"}


def argv(line: str, place: dict[str, str], k: int) -> list[str]:
    """The README line as a command to run: each option it names with a value for this test's data."""
    command = line.split()[1]
    if command in SKIPPED:
        return [command, "--help"]
    values = {"--data": place["PATH|URI"], "--out": place["RUN_DIR"], "--executor": "local",
              "--unit-timeout": "600", "--set": "policies.wfpp.fraction=0.4", "--kept-ids": f"{place['tmp']}/kept.txt",
              "--removed-ids": f"{place['tmp']}/removed.txt", "--materialize": f"{place['tmp']}/curated{k}",
              "--output": f"{place['tmp']}/page.html", "--seed": "1"}
    positional = {"run": [place["CONFIG"]]}.get(command, [place["RUN_DIR"]] if "RUN_DIR" in line else [])
    out = [command, *positional]
    for flag in sorted(flags(line)):
        if flag in OPTIONS_NOT_RUN:
            continue
        out += [flag] + ([values[flag]] if flag in values else [])
    return out


def test_the_readme_command_list_runs_top_to_bottom(place, capsys):
    for k, line in enumerate(command_block()):
        args = argv(line, place, k)
        try:
            rc = cli.main(args)
        except SystemExit as e:  # (--help)
            rc = e.code
        printed = capsys.readouterr()
        assert rc == 0, f"README: {line}\nran: curate {shlex.join(args)}\n{printed.err[-2000:]}"
    assert (Path(place["tmp"]) / "page.html").exists() and (Path(place["tmp"]) / "kept.txt").exists()


def test_every_example_command_in_the_readme_parses():
    examples = [line for line in re.findall(r"^(?:[A-Z_]+=\S+ )*curate (.+)$", README, re.M)
                if "[" not in line and "|" not in line and "RUN_DIR" not in line]
    assert examples, "no example found"
    for example in examples:
        args = shlex.split(re.split(r"\s{2,}", example)[0])  # (a `# comment` or a synopsis' description)
        cli.parser(args[0]).parse_args(args)
