"""curate: score and prune large training sets. `curate run CONFIG` scores every row of a dataset and writes a
manifest of its scores and keep decision (and the curated rows, and an HTML report); re-run it with other policy
settings and it decides again in seconds. `curate join` links a table to a reference table. A finished run is
read with `summary`, `report` and `export`, checked with `verify` and trimmed with `gc`; `stages` lists what a
config may use; `data` builds a bundled dataset; `deploy` schedules a config in the Prefect UI.
`curate COMMAND --help` says more."""
from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.storage import AnyPath, location

log = logging.getLogger("curate")
THIRD_PARTY_LOGGERS = ("py.warnings", "open_clip", "root.open_clip", "transformers", "sentence_transformers", "PIL",
                       "faiss")


def _run(args: argparse.Namespace) -> int:
    from curate import api
    from curate.config import load_config

    timeout = [f"unit_timeout={args.unit_timeout}"] if args.unit_timeout is not None else []
    pipeline, default_data = load_config(args.config, overrides=args.set + timeout)
    out = location(args.out or f"runs/{pipeline.name}")
    summary = api.run(pipeline, args.data or default_data, out, executor=args.executor, ray_address=args.ray_address,
                      workers=args.workers, report=True, verify=args.verify)
    _print_result(summary, out)
    return 0


def _report(args: argparse.Namespace) -> int:
    from curate.report import write_report

    if args.old_out is not None:
        log.warning("curate report: --out is renamed --output (it is a file, where --out is a run directory for "
                    "run, join and deploy); the old name still works in this release and will be removed in the "
                    "next (see CHANGELOG.md)")
    print(f"report:   {write_report(args.run_dir, args.output or args.old_out, seed=args.seed)}")
    return 0


def _print_result(summary: dict, out: AnyPath) -> None:
    r = summary["result"]
    print(f"{summary['pipeline']}: {r['in']} rows -> kept {r['kept']}, dropped {r['dropped']}, "
          f"errored {r['errored']}" + (f", {r['failed_shard_rows']} in failed shards" if r["failed_shard_rows"] else ""))
    not_read = summary.get("inputs", {}).get("not_read") or []
    if not_read:
        shown = ", ".join(not_read[:10]) + (f" and {len(not_read) - 10} more" if len(not_read) > 10 else "")
        print(f"  note: {len(not_read)} file(s) in {summary['data']} are not {summary['format']} (`format:`) and were "
              f"not read: {shown}")
    stages, policies = _pipeline_order(summary, out)
    for name in stages:
        s = summary["stages"][name]
        errs = ", ".join(f"{k} {v}" for k, v in s["errors"].items())
        print(f"  stage {name}: {s['scored']} scored, {s['errored']} errored{' (' + errs + ')' if errs else ''}, "
              f"{s['units_computed']} shard(s) computed, {s['units_reused']} reused")
    for name in policies:
        p = summary["policies"][name]
        print(f"  policy {name} ({p['type']}): kept {p['kept']}, dropped {p['dropped']}, errored {p['errored']}")
    from curate.report.view import lines

    for line in lines(out, summary):  # what stages and policies with a presenter add (curate/presentation.py)
        print(line)
    _print_files(summary, out)


def _pipeline_order(summary: dict, out: AnyPath) -> tuple[list[str], list[str]]:
    """(stages, policies) in pipeline order: summary.json sorts its keys, the manifest's columns keep the order."""
    from curate.layout import manifest_parts
    from curate.report.stats import pipeline_order

    parts = manifest_parts(out)
    policies, stages = pipeline_order(parts[0].schema()) if parts else ([], [])

    def ordered(names: list[str], table: dict) -> list[str]:
        return [n for n in names if n in table] + [n for n in table if n not in names]

    return ordered(stages, summary["stages"]), ordered(policies, summary["policies"])


def _print_files(summary: dict, out: AnyPath) -> None:
    from curate.layout import RunLayout

    layout = RunLayout(out)
    print(f"manifest: {layout.manifest}")
    print(f"summary:  {layout.summary}")
    if "exports" in summary:
        print(f"curated:  {summary['exports']['materialized_to']} ({summary['exports']['materialized_rows']} rows); "
              f"id lists: {layout.kept_ids}, {layout.removed_ids}")
    if "report" in summary:
        print(f"report:   {summary['report']}")


def _data(args: argparse.Namespace) -> int:
    if args.name == "stdlib-code":
        from curate.data.stdlib_code import build_stdlib_code

        out = args.out or "data/stdlib-code"
        info = build_stdlib_code(out, shards=args.shards)
        print(f"stdlib-code data: {info['rows']} chunks in {info['shards']} shards at {out}; "
              f"email targets: {info['targets']}")
        return 0
    if args.name == "web-text":
        from curate.data.web_text import build_web_text

        out = args.out or "data/web-text"
        info = build_web_text(out, shards=args.shards)
        per = ", ".join(f"{n} {s}" for s, n in info["documents"].items())
        print(f"web-text data: {info['rows']} documents ({per}) in {info['shards']} JSONL shards at {out}")
        return 0
    if args.name == "fashion-mnist":
        from curate.data.fashion_mnist import build_fashion_mnist

        out = args.out or "data/fashion-mnist"
        info = build_fashion_mnist(out, shards=args.shards)
        print(f"fashion-mnist data: {info['train']['rows']} train rows at {out}/train, "
              f"{info['test']['rows']} test rows at {out}/test")
        return 0
    if args.name == "autofj-synth":
        from curate.data.autofj_synth import build

        out = args.out or "data/autofj-synth"
        info = build(out, 100_000, 100_000, shards=args.shards)
        print(f"autofj-synth data: L {info['left']} names at {out}/left.parquet, R {info['right']} rows "
              f"({info['new_entities']} new entities) in {args.shards} shards at {out}/right")
        return 0
    if args.name != "demo":
        raise CurateError(f"unknown bundled dataset {args.name!r}; available: demo, stdlib-code, web-text, fashion-mnist, autofj-synth")
    from curate.data.demo import build_demo

    info = build_demo(args.out or "data/demo", shards=args.shards)
    print(f"demo data: {info['rows']} rows in {info['shards']} shards at {args.out or 'data/demo'}")
    return 0


def _join(args: argparse.Namespace) -> int:
    from curate import api

    params = {name: value for name, value in vars(args).items() if name.startswith("p_") and value is not None}
    params = {name[2:]: value for name, value in params.items()}
    if args.old_id is not None:
        log.warning("curate join: --id is renamed --right-id; the old name still works in this release and will be "
                    "removed in the next (see CHANGELOG.md)")
    right_id = args.right_id or args.old_id or "id"
    params.update(_join_settings(args.set))
    summary = api.join(args.reference, args.right, args.on, args.out, right_id=right_id, executor=args.executor,
                       ray_address=args.ray_address, workers=args.workers, shards=args.shards, report=True,
                       verify=args.verify, **params)
    _print_join(summary, location(args.out))
    return 0


def _join_settings(items: list[str]) -> dict[str, Any]:
    """`--set PARAM=VALUE` (or `stages.autofj.PARAM=VALUE`, as in `curate run`) for the join's autofj stage."""
    import yaml

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        name = key.removeprefix("stages.autofj.")
        if not sep or not name or "." in name:
            raise CurateError(f"--set {item!r}: expected PARAM=VALUE (an autofj parameter, see `curate stages`)")
        out[name] = yaml.safe_load(text)
    return out


def _print_join(summary: dict, out: AnyPath) -> None:
    """What the join did (the autofj stage presents itself: counts, estimate, warnings), then the files."""
    from curate.report.view import lines

    for line in lines(out, summary):
        print(line)
    _print_files(summary, out)


def _deploy(args: argparse.Namespace) -> int:
    from curate import extras

    extras.require("ui", "curate deploy")
    from flows import server

    url = server.api_url()
    server.check(url)
    os.environ["PREFECT_API_URL"] = url  # before Prefect is first imported (flows.deploy imports it)
    from flows import deploy

    config = Path(args.config).resolve()
    d = deploy.deployment(config, data=args.data, out=args.out, cron=args.cron, name=args.name,
                          executor=args.executor)
    deploy.allow(config)  # runs of this deployment may use this config, and no other path typed into the UI
    print(f"serving deployment curate/{d.name} of {config} (cron {args.cron!r}) on {url}; its runs appear in the "
          f"Prefect UI under Deployments. Ctrl-C stops serving (the schedule then pauses).", flush=True)
    try:
        deploy.serve(d)
    except KeyboardInterrupt:
        pass
    return 0


def _verify(args: argparse.Namespace) -> int:
    from curate.api import verify

    result = verify(args.run_dir)
    for b in result["bad"]:
        print(f"bad: {b['unit']}: {b['problem']}")
    print(f"{result['units_checked']} unit(s) checked, {len(result['bad'])} damaged"
          + ("; the next `curate run` recomputes them" if result["bad"] else ""))
    return 1 if result["bad"] else 0


def _gc(args: argparse.Namespace) -> int:
    from curate.api import gc

    result = gc(args.run_dir)
    for name, f in result["freed"].items():
        print(f"removed {name}/: {f['files']:,} file(s), {f['bytes'] / 2**20:,.1f} MiB")
    print(f"freed {result['freed_bytes'] / 2**20:,.1f} MiB; kept {result['kept_bytes'] / 2**20:,.1f} MiB in "
          f"{result['kept_files']:,} file(s) (ids, artifacts, scores, manifest: a policy-only re-run needs no more)")
    return 0


def _stages(args: argparse.Namespace) -> int:
    from curate.reference import reference

    print(reference(), end="")
    return 0


def _export(args: argparse.Namespace) -> int:
    from curate.engine.export import export

    if not (args.kept_ids or args.removed_ids or args.materialize):
        raise CurateError("nothing to export: give --kept-ids, --removed-ids and/or --materialize")
    result = export(args.run_dir, args.kept_ids, args.removed_ids, args.materialize, args.parquet)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for kind, path in (("kept", args.kept_ids), ("removed", args.removed_ids)):
        if path:
            print(f"{kind} ids:  {result.get(f'{kind}_ids', 0):,} -> {path}")
    if args.materialize:
        print(f"curated:  {result.get('materialized_rows', 0):,} rows -> {result.get('materialized_to', args.materialize)}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from curate.layout import load_summary

    summary = load_summary(args.run_dir)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_result(summary, location(args.run_dir))
    return 0


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


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; given the `command` about to run, `join`'s options (read from the autofj stage,
    which needs the join extra) are added only when that command is `join`, so other commands never import it."""
    p = argparse.ArgumentParser(prog="curate", description=__doc__)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _data_parser(sub)
    _join_parser(sub, command)
    _deploy_parser(sub)
    _reader_parsers(sub)
    return p


def _run_parser(sub: Any) -> None:
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
    r.set_defaults(func=_run)


def _data_parser(sub: Any) -> None:
    d = sub.add_parser("data", help="build a bundled real dataset")
    d.add_argument("name", help="demo: openclipart image-caption pairs (Debian openclipart-svg/-png); "
                                "stdlib-code: stdlib .py + Python docs + fortunes chunks (ZIP-FIT); "
                                "web-text: licences, man pages, Python docs, code, fortunes, translations "
                                "(the web-text pipeline); "
                                "fashion-mnist: 60k+10k labelled images (Debian dataset-fashion-mnist; EL2N); "
                                "autofj-synth: 100k names and 100k corrupted rows (Auto-FuzzyJoin)")
    d.add_argument("--out", metavar="DIR", help="where to build it (default: data/<name>)")
    d.add_argument("--shards", type=int, default=16, help="how many shards to write (default 16)")
    d.set_defaults(func=_data)


def _join_parser(sub: Any, command: str | None) -> None:
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
    j.set_defaults(func=_join)


def _deploy_parser(sub: Any) -> None:
    dp = sub.add_parser("deploy", help="serve a scheduled Prefect deployment of a config (needs a Prefect server: "
                                       "make ui); runs show in the Prefect UI with the run's summary")
    dp.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    dp.add_argument("--data", help="dataset folder or URI (default: the config's `data`)")
    dp.add_argument("--out", metavar="DIR", help="run directory, a folder or URI (default: runs/<pipeline name>)")
    dp.add_argument("--cron", required=True, help="when to run, a cron schedule: '0 3 * * *' is 03:00 daily")
    dp.add_argument("--name", help="deployment name (default: the config's file name without .yaml)")
    _executor_options(dp, cluster=False)
    dp.set_defaults(func=_deploy)


RUN_DIR_HELP = "a finished run's directory (its --out) or URI, e.g. runs/demo"


def _reader_parsers(sub: Any) -> None:
    """The commands that read a finished run (RUN_DIR), and `stages`."""
    v = sub.add_parser("verify", help="re-hash a run's outputs; damaged units are marked for the next run")
    v.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    v.set_defaults(func=_verify)
    g = sub.add_parser("gc", help="reclaim a finished run's fit intermediates (fit maps, shuffles); policies "
                                  "still re-run in seconds")
    g.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    g.set_defaults(func=_gc)
    t = sub.add_parser("stages", help="list every stage and policy with its parameters (docs/reference.md)")
    t.set_defaults(func=_stages)
    e = sub.add_parser("export", help="id lists or the curated dataset from a run")
    e.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    e.add_argument("--kept-ids", metavar="FILE", help="write the kept rows' ids here, one per line")
    e.add_argument("--removed-ids", metavar="FILE", help="write the dropped and errored rows' ids here, one per line")
    e.add_argument("--materialize", metavar="DIR", help="folder for the kept rows, same schema and format as the input")
    e.add_argument("--parquet", action="store_true", help="materialize as Parquet whatever the input's format")
    e.add_argument("--json", action="store_true", help="print what was written as JSON instead of text")
    e.set_defaults(func=_export)
    s = sub.add_parser("summary", help="print a run's summary")
    s.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    s.add_argument("--json", action="store_true", help="print summary.json whole (every count, timing and setting)")
    s.set_defaults(func=_summary)
    h = sub.add_parser("report", help="write a run's HTML report (curate run writes it too)")
    h.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    h.add_argument("--output", "-o", metavar="FILE", help="the HTML file to write (default: RUN_DIR/report.html)")
    h.add_argument("--out", dest="old_out", default=None, help=argparse.SUPPRESS)  # the old name of --output
    h.add_argument("--seed", type=int, default=0, help="which rows the galleries and dedup groups sample (default 0)")
    h.set_defaults(func=_report)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every `finally` and context manager runs (a BaseException,
    like KeyboardInterrupt, so that no `except Exception` around a unit mistakes it for the unit failing)."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _command(argv: list[str]) -> str | None:
    """The sub-command in `argv` (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser(_command(argv) or "").parse_args(argv)
    except CurateError as e:  # `curate join` without the join extra: the install line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Libraries' warnings belong in the log (-v shows them); the facts they carry are in the manifest.
    logging.captureWarnings(True)
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if args.verbose else logging.ERROR)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)  # unwind: stop this run's workers, release the lease
    try:
        return args.func(args)
    except Terminated:
        print("error: terminated (SIGTERM); finished units are kept and a re-run resumes from them", file=sys.stderr)
        return 143
    except CurateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `curate summary --json | head`: the reader has what it wanted
        _quiet_stdout()
        return 141
    except OSError as e:  # storage the engine did not write through its own checks (reading, listing)
        print(f"error: {_os_error(e, args)}", file=sys.stderr)
        return 1


WRITERS = ("run", "join", "export", "report", "gc", "data", "deploy")  # commands that write into a run or dataset


def _os_error(e: OSError, args: argparse.Namespace) -> str:
    """The place (the file, else the URI or folder the command was given) and the reason; only commands that
    write say what becomes of a half-written file."""
    place = e.filename or next((str(v) for k in ("run_dir", "data", "out", "config")
                                if (v := getattr(args, k, None))), "")
    reason = e.strerror or (e.args[0] if e.args else type(e).__name__)
    after = ("; nothing half-written is trusted: fix the cause and re-run" if args.command in WRITERS
             else "; nothing was changed: fix the cause and try again")
    return f"{place}: {reason}{after}" if place else f"{reason}{after}"


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit finds no broken pipe to report."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
