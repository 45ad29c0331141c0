"""The `curate` command: run, data, export, summary, report."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from curate.errors import CurateError

log = logging.getLogger("curate")


def _run(args: argparse.Namespace) -> int:
    import curate

    pipeline, default_data = curate.load_config(args.config)
    data = args.data or default_data
    if not data:
        raise CurateError(f"{args.config} names no `data`; pass --data PATH")
    out = Path(args.out or f"runs/{pipeline.name}")
    summary = curate.run(pipeline, data, out, executor=args.executor, ray_address=args.ray_address,
                         workers=args.workers)
    _print_result(summary, out)
    _report(argparse.Namespace(run_dir=out, out=None))
    return 0


def _report(args: argparse.Namespace) -> int:
    from curate.report import write_report

    print(f"report:   {write_report(args.run_dir, args.out)}")
    return 0


def _print_result(summary: dict, out: Path) -> None:
    r = summary["result"]
    print(f"{summary['pipeline']}: {r['in']} rows -> kept {r['kept']}, dropped {r['dropped']}, "
          f"errored {r['errored']}" + (f", {r['failed_shard_rows']} in failed shards" if r["failed_shard_rows"] else ""))
    for name, s in summary["stages"].items():
        errs = ", ".join(f"{k} {v}" for k, v in s["errors"].items())
        print(f"  stage {name}: {s['scored']} scored, {s['errored']} errored{' (' + errs + ')' if errs else ''}, "
              f"{s['units_computed']} shard(s) computed, {s['units_reused']} reused")
    for name, p in summary["policies"].items():
        print(f"  policy {name} ({p['type']}): kept {p['kept']}, dropped {p['dropped']}, errored {p['errored']}")
    print(f"manifest: {out / 'manifest'}")
    print(f"summary:  {out / 'summary.json'}")
    if "exports" in summary:
        print(f"curated:  {summary['exports']['materialized_to']} ({summary['exports']['materialized_rows']} rows); "
              f"id lists: {out / 'kept_ids.txt'}, {out / 'removed_ids.txt'}")


def _data(args: argparse.Namespace) -> int:
    if args.name == "stdlib-code":
        from curate.data.stdlib_code import build_stdlib_code

        out = args.out or "data/stdlib-code"
        info = build_stdlib_code(out, shards=args.shards)
        print(f"stdlib-code data: {info['rows']} chunks in {info['shards']} shards at {out}; "
              f"email targets: {info['targets']}")
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
        raise CurateError(f"unknown bundled dataset {args.name!r}; available: demo, stdlib-code, fashion-mnist, autofj-synth")
    from curate.data.demo import build_demo

    info = build_demo(args.out or "data/demo", shards=args.shards)
    print(f"demo data: {info['rows']} rows in {info['shards']} shards at {args.out or 'data/demo'}")
    return 0


def _join(args: argparse.Namespace) -> int:
    from curate.join.cli import join

    summary = join(args.left, args.right, args.on, args.out, precision=args.precision, left_id=args.left_id,
                   right_id=args.right_id, executor=args.executor, shards=args.shards,
                   blocking_budget=int(args.blocking_budget) if args.blocking_budget.isdigit() else args.blocking_budget,
                   minhash_lsh=args.minhash_lsh)
    s = summary["stages"]["autofj"]
    print(f"autofj: {s['scored']} rows scored, {s['errored']} errored; program: "
          f"estimated precision {s.get('artifact', {}).get('est_precision')}")
    _print_result(summary, Path(args.out))
    return 0


def _export(args: argparse.Namespace) -> int:
    from curate.manifest import export

    if not (args.kept_ids or args.removed_ids or args.materialize):
        raise CurateError("nothing to export: give --kept-ids, --removed-ids and/or --materialize")
    print(json.dumps(export(args.run_dir, args.kept_ids, args.removed_ids, args.materialize), indent=1))
    return 0


def _summary(args: argparse.Namespace) -> int:
    from curate.manifest import load_summary

    summary = load_summary(args.run_dir)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_result(summary, Path(args.run_dir))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curate", description=__doc__)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a pipeline config over a dataset")
    r.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    r.add_argument("--data", help="dataset folder or URI of Parquet shards (default: the config's `data`)")
    r.add_argument("--out", help="run directory (default: runs/<pipeline name>)")
    r.add_argument("--executor", choices=["local", "ray"], default="ray")
    r.add_argument("--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    r.add_argument("--workers", type=int, help="at most this many workers per stage")
    r.set_defaults(func=_run)
    d = sub.add_parser("data", help="build a bundled real dataset")
    d.add_argument("name", help="demo: openclipart image-caption pairs (Debian openclipart-svg/-png); "
                                "stdlib-code: stdlib .py + Python docs + fortunes chunks (ZIP-FIT); "
                                "fashion-mnist: 60k+10k labelled images (Debian dataset-fashion-mnist; EL2N); "
                                "autofj-synth: 100k names and 100k corrupted rows (Auto-FuzzyJoin)")
    d.add_argument("--out")
    d.add_argument("--shards", type=int, default=16)
    d.set_defaults(func=_data)
    j = sub.add_parser("join", help="Auto-FuzzyJoin: link each row of R to at most one row of L (CSV or Parquet)")
    j.add_argument("left", help="reference table L: CSV file, Parquet file or folder")
    j.add_argument("right", help="table R: CSV file, Parquet file or folder of shards")
    j.add_argument("--on", action="append", required=True, help="join column (repeat for several)")
    j.add_argument("--precision", type=float, default=0.9, help="precision target τ (default 0.9)")
    j.add_argument("--out", required=True, help="run directory")
    j.add_argument("--left-id", default="id", help="id column of L (default id)")
    j.add_argument("--right-id", default="id", help="id column of R (default id)")
    j.add_argument("--executor", choices=["local", "ray"], default="local")
    j.add_argument("--shards", type=int, default=4, help="shards to split a CSV R into")
    j.add_argument("--blocking-budget", default="auto",
                   help="auto (default: exact up to 50k L rows), exact, or postings probed per row")
    j.add_argument("--minhash-lsh", action="store_true",
                   help="add MinHash LSH candidates (20 bands x 5 rows) to the TF-IDF top k")
    j.set_defaults(func=_join)
    e = sub.add_parser("export", help="id lists or the curated dataset from a run")
    e.add_argument("run_dir")
    e.add_argument("--kept-ids")
    e.add_argument("--removed-ids")
    e.add_argument("--materialize", help="folder for the kept rows, same schema as the input")
    e.set_defaults(func=_export)
    s = sub.add_parser("summary", help="print a run's summary")
    s.add_argument("run_dir")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_summary)
    h = sub.add_parser("report", help="write a run's HTML report (curate run writes it too)")
    h.add_argument("run_dir")
    h.add_argument("--out", help="HTML file (default: RUN_DIR/report.html)")
    h.set_defaults(func=_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except CurateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
