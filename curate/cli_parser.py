"""The command line's arguments and help (`curate.cli` runs the commands): one sub-parser per command, each
option with help a user can act on, `--out` always a directory, `RUN_DIR` always a finished run."""
from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Mapping
from typing import Any


def _executor_options(p: argparse.ArgumentParser, cluster: bool = True) -> None:
    from curate.api import DEFAULT_EXECUTOR
    from curate.engine.executor import EXECUTORS

    p.add_argument("--executor", choices=list(EXECUTORS), default=DEFAULT_EXECUTOR,
                   help=f"where units run (default {DEFAULT_EXECUTOR}; local when Ray is not installed)")
    if not cluster:
        return
    p.add_argument("--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--workers", type=int, help="at most this many workers per stage")


def _stage_options(p: argparse.ArgumentParser, type_name: str, skip: set[str]) -> None:
    """One `--<param>` option per parameter of a registered stage, spelled as in YAML (`_` -> `-`)."""
    import yaml

    from curate import registry
    from curate.params import type_text

    cls = registry.lookup("stage", type_name)
    for name, spec in cls.param_specs().items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        default = "" if spec.default is inspect.Parameter.empty else f" (default {spec.default!r})"
        help_ = f"{spec.doc or name} [{type_text(spec.hint)}]{default}; YAML `{name}`"
        takes_flag = "bool" in type_text(spec.hint)  # `--minhash-lsh` alone means true
        p.add_argument(flag, dest=f"p_{name}", metavar=name.upper(), type=yaml.safe_load, nargs="?" if takes_flag else None,
                       const=True if takes_flag else None, default=None, help=help_)


def build(handlers: Mapping[str, Callable], description: str, command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, each command calling its handler (`handlers[name]`); given the `command` about to
    run, `join`'s options (read from the autofj stage, which needs the join extra) are added only when that
    command is `join`, so other commands never import it."""
    p = argparse.ArgumentParser(prog="curate", description=description)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True)
    _run_parser(sub, handlers)
    _data_parser(sub, handlers)
    _join_parser(sub, handlers, command)
    _deploy_parser(sub, handlers)
    _train_parser(sub, handlers)
    _reader_parsers(sub, handlers)
    _ray_parser(sub, handlers)
    return p


def _run_parser(sub: Any, handlers: Mapping[str, Callable]) -> None:
    r = sub.add_parser("run", help="run a pipeline config over a dataset")
    r.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    r.add_argument("--data", metavar="PATH|URI",
                   help="the dataset: a folder, file or URI (s3://, gs://) of Parquet, JSONL, CSV or WebDataset "
                        "shards, by file suffix or the config's `format:` (default: the config's `data`)")
    r.add_argument("--out", metavar="DIR", help="run directory, a folder or URI (default: runs/<pipeline name>)")
    _executor_options(r)
    r.add_argument("--unit-timeout", type=float, metavar="SECONDS",
                   help="ray: a unit with no result after this long is presumed lost (a lost node, a stuck worker) "
                        "and retried elsewhere (default: 10x the slowest finished unit of its phase, at least 2 "
                        "minutes); YAML `unit_timeout`")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value: `stages.<name>.<param>=v`, `policies.<name>.<param>=v` or a "
                        "top-level key (`batch_size=1000`); values are YAML (repeat for several)")
    r.add_argument("--verify", action="store_true",
                   help="re-hash every stored output and input shard first; damaged units are recomputed")
    r.set_defaults(func=handlers["run"])


def _data_parser(sub: Any, handlers: Mapping[str, Callable]) -> None:
    d = sub.add_parser("data", help="build a bundled real dataset")
    d.add_argument("name", help="demo: openclipart image-caption pairs (Debian openclipart-svg/-png); "
                                "stdlib-code: stdlib .py + Python docs + fortunes chunks (ZIP-FIT); "
                                "web-text: licences, man pages, Python docs, code, fortunes, translations "
                                "(the web-text pipeline); "
                                "fashion-mnist: 60k+10k labelled images (Debian dataset-fashion-mnist; EL2N); "
                                "autofj-synth: 100k names and 100k corrupted rows (Auto-FuzzyJoin)")
    d.add_argument("--out", metavar="DIR", help="where to build it (default: data/<name>)")
    d.add_argument("--shards", type=int, default=16, help="how many shards to write (default 16)")
    d.set_defaults(func=handlers["data"])


def _join_parser(sub: Any, handlers: Mapping[str, Callable], command: str | None) -> None:
    j = sub.add_parser("join", help="Auto-FuzzyJoin: link each row of R to at most one row of L (CSV or Parquet)")
    j.add_argument("reference", help="reference table L: CSV file, Parquet file or folder")
    j.add_argument("right", help="table R: CSV file, Parquet file or folder of shards")
    j.add_argument("--on", action="append", required=True, help="join column (repeat for several)")
    j.add_argument("--out", metavar="DIR", required=True, help="run directory, a folder or URI")
    j.add_argument("--right-id", default=None, help="id column of R (default id)")
    j.add_argument("--id", dest="old_id", default=None, help=argparse.SUPPRESS)  # the old name of --right-id
    j.add_argument("--shards", type=int, default=4, help="shards to split a CSV R into")
    j.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                   help="set an autofj parameter as `curate run --set` does (`precision_target=0.8`, or "
                        "`stages.autofj.precision_target=0.8`); values are YAML (repeat for several)")
    j.add_argument("--verify", action="store_true",
                   help="re-hash every stored output and input shard first; damaged units are recomputed")
    _executor_options(j)
    if command in (None, "join"):
        _stage_options(j, "autofj", skip={"reference", "on", "name"})
    j.set_defaults(func=handlers["join"])


def _deploy_parser(sub: Any, handlers: Mapping[str, Callable]) -> None:
    dp = sub.add_parser("deploy", help="serve a scheduled Prefect deployment of a config (needs a Prefect server: "
                                       "make ui); runs show in the Prefect UI with the run's summary")
    dp.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    dp.add_argument("--data", help="dataset folder or URI (default: the config's `data`)")
    dp.add_argument("--out", metavar="DIR", help="run directory, a folder or URI (default: runs/<pipeline name>)")
    dp.add_argument("--cron", required=True, help="when to run, a cron schedule: '0 3 * * *' is 03:00 daily")
    dp.add_argument("--name", help="deployment name (default: the config's file name without .yaml)")
    _executor_options(dp, cluster=False)
    dp.set_defaults(func=handlers["deploy"])


def _train_parser(sub: Any, handlers: Mapping[str, Callable]) -> None:
    t = sub.add_parser("train-classifier", help="train a fastText quality classifier (DCLM recipe): positives from a "
                                                "target corpus, negatives sampled from the pool")
    t.add_argument("--positive", nargs="+", required=True, metavar="FILE",
                   help="target-corpus files or folders: JSONL, Parquet, CSV (--text-column) or .txt (one document each)")
    t.add_argument("--negative", nargs="+", required=True, metavar="FILE", help="pool files or folders, as --positive")
    t.add_argument("--out", required=True, help="the model file to write (and OUT.json beside it)")
    t.add_argument("--text-column", default="text", help="the text column of JSONL, Parquet and CSV files (default text)")
    t.add_argument("--label", default="hq", help="the positives' label, the stage's `label` (default hq)")
    t.add_argument("--negative-label", default="lq", help="the negatives' label (default lq)")
    t.add_argument("--holdout", type=float, default=0.1, help="share of each class held out for the metrics (default 0.1)")
    t.add_argument("--max-negatives", type=int, help="sample at most this many negatives")
    t.add_argument("--no-balance", action="store_true",
                   help="use every negative (default: sample as many negatives as there are positives)")
    t.add_argument("--seed", type=int, default=0, help="sampling, split and fastText seed (default 0)")
    t.add_argument("--epoch", type=int, default=5, help="fastText epochs (default 5)")
    t.add_argument("--ngrams", type=int, default=2, help="fastText word n-grams (default 2, as DCLM)")
    t.add_argument("--dim", type=int, default=100, help="fastText vector size (default 100)")
    t.add_argument("--lr", type=float, default=0.1, help="fastText learning rate (default 0.1)")
    t.add_argument("--bucket", type=int, default=2_000_000,
                   help="fastText n-gram hash buckets (default 2,000,000: a model of bucket x dim x 4 bytes)")
    t.add_argument("--min-count", type=int, default=1, help="fastText minimal word count (default 1)")
    t.add_argument("--threads", type=int, default=1,
                   help="fastText threads (default 1: reproducible; more are faster, not reproducible)")
    t.set_defaults(func=handlers["train-classifier"])


RUN_DIR_HELP = "a finished run's directory (its --out) or URI, e.g. runs/demo"


def _reader_parsers(sub: Any, handlers: Mapping[str, Callable]) -> None:
    """The commands that read a finished run (RUN_DIR), and `stages`."""
    v = sub.add_parser("verify", help="re-hash a run's outputs; damaged units are marked for the next run")
    v.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    v.set_defaults(func=handlers["verify"])
    g = sub.add_parser("gc", help="reclaim a finished run's fit intermediates (fit maps, shuffles); policies "
                                  "still re-run in seconds")
    g.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    g.set_defaults(func=handlers["gc"])
    t = sub.add_parser("stages", help="list every stage and policy with its parameters (docs/reference.md)")
    t.set_defaults(func=handlers["stages"])
    e = sub.add_parser("export", help="id lists or the curated dataset from a run")
    e.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    e.add_argument("--kept-ids", metavar="FILE", help="write the kept rows' ids here, one per line")
    e.add_argument("--removed-ids", metavar="FILE", help="write the dropped and errored rows' ids here, one per line")
    e.add_argument("--materialize", metavar="DIR", help="folder for the kept rows, same schema and format as the input")
    e.add_argument("--parquet", action="store_true", help="materialize as Parquet whatever the input's format")
    e.add_argument("--json", action="store_true", help="print what was written as JSON instead of text")
    e.set_defaults(func=handlers["export"])
    s = sub.add_parser("summary", help="print a run's summary")
    s.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    s.add_argument("--json", action="store_true", help="print summary.json whole (every count, timing and setting)")
    s.set_defaults(func=handlers["summary"])
    h = sub.add_parser("report", help="write a run's HTML report (curate run writes it too)")
    h.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    h.add_argument("--output", "-o", metavar="FILE", help="the HTML file to write (default: RUN_DIR/report.html)")
    h.add_argument("--out", dest="old_out", default=None, help=argparse.SUPPRESS)  # the old name of --output
    h.add_argument("--seed", type=int, default=0, help="which rows the galleries and dedup groups sample (default 0)")
    h.set_defaults(func=handlers["report"])


def _ray_parser(sub: Any, handlers: Mapping[str, Callable]) -> None:
    r = sub.add_parser("ray", help="a shared local Ray left running, which runs with the ray executor and no address "
                                   "use: start-up once per machine instead of once per run")
    r.add_argument("action", choices=["start", "stop", "status"],
                   help="start it (a no-op when it runs), stop it, or say whether it runs")
    r.add_argument("--num-cpus", type=int, help="CPUs it offers (default: all of this machine's)")
    r.set_defaults(func=handlers["ray"])
