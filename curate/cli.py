"""curate: score and prune large training sets. `curate run CONFIG` scores every row of a dataset and writes a
manifest of its scores and keep decision (and the curated rows, and an HTML report); re-run it with other policy
settings and it decides again in seconds. `curate join` links a table to a reference table. A finished run is
read with `summary`, `report` and `export`, checked with `verify` and trimmed with `gc`; `stages` lists what a
config may use; `data` builds a bundled dataset; `deploy` schedules a config in the Prefect UI;
`train-classifier` trains a fastText quality classifier for the `quality_classifier` stage; `curate ray start`
leaves a local Ray running for the next runs (`ray stop`, `ray status`).
`curate COMMAND --help` says more."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.storage import AnyPath, location, place_of

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


def _train_classifier(args: argparse.Namespace) -> int:
    from curate.api import train_classifier

    params = {k: getattr(args, k) for k in ("epoch", "ngrams", "dim", "lr", "bucket", "min_count", "threads", "seed")}
    record = train_classifier(args.positive, args.negative, args.out, text_column=args.text_column, label=args.label,
                              negative_label=args.negative_label, holdout=args.holdout, balance=not args.no_balance,
                              max_negatives=args.max_negatives, **params)
    c, m = record["counts"], record["holdout_metrics"]
    print(f"trained on {c['train_positive']:,} positive and {c['train_negative']:,} negative texts "
          f"({c['negative']:,} of {c['negative_read']:,} negatives sampled; {c['blank_left_out']:,} blank left out)")
    if m["rows"]:
        shown = {k: "n/a" if m[k] is None else f"{m[k]:.4f}" for k in ("precision", "recall", "f1", "auroc")}
        print(f"held out {c['holdout_positive']:,} positive, {c['holdout_negative']:,} negative: precision "
              f"{shown['precision']}, recall {shown['recall']}, F1 {shown['f1']} at P >= {m['cut']:g}; "
              f"AUROC {shown['auroc']}")
    else:
        print("nothing held out (--holdout 0): no metrics")
    print(f"model: {args.out} (sha256 {record['model_sha256'][:16]}...); record: {args.out}.json")
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


def _ray(args: argparse.Namespace) -> int:
    from curate.api import shared_ray

    st = shared_ray(args.action, num_cpus=args.num_cpus)
    if st["state"] == "running":
        how = "started" if st.get("started") else "running"
        print(f"shared Ray {how} at {st['address']} ({st['num_cpus']} CPU, holder pid {st['pid']}); runs with the "
              f"ray executor and no address use it; record: {st['record']}")
    elif st["state"] == "stale":
        print(f"shared Ray recorded in {st['record']} is gone (runs start their own); `curate ray start` replaces it")
    else:
        print("shared Ray stopped" if st.get("stopped") else "no shared Ray running")
    return 0


HANDLERS = {"run": _run, "data": _data, "join": _join, "deploy": _deploy, "verify": _verify, "gc": _gc,
            "stages": _stages, "export": _export, "summary": _summary, "report": _report,
            "train-classifier": _train_classifier, "ray": _ray}


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line (curate/cli_parser.py); `join`'s stage options only when `command` is `join`."""
    from curate.cli_parser import build

    return build(HANDLERS, __doc__, command)


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
    place = place_of(e) or next((str(v) for k in ("run_dir", "data", "out", "config")
                                if (v := getattr(args, k, None))), "")
    reason = e.strerror or (e.args[0] if e.args else type(e).__name__)
    after = ("; nothing half-written is trusted: fix the cause and re-run" if args.command in WRITERS
             else "; fix the cause and try again")
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
