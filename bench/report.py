"""Report benchmark: page size and load time in headless Chromium for runs over the whole demo (~8,100 rows).

    python -m bench.report [--data data/demo] [--run-dir RUN ...] [--loads 5]

Run 1 (always): WFPP + ICC (lexicon) + caption length over the real openclipart demo, three policies,
local executor; cheap stages, so the bench takes a minute. `--run-dir` adds finished runs (e.g. the
full `configs/demo.yaml` run with MiniLM, SemDeDup and DBP). For each: report generation seconds, page
bytes split into figures / thumbnails / the rest, Chromium load time (navigation start to load event,
a fresh browser and profile per load; median and max of --loads), console messages, broken images.
Reference in the same run: the bytes the galleries would take with the sampled rows' original PNGs
embedded instead of thumbnails. Targets (issue 9): opens in under 2 s, stays under a few MB (5 MB).
Writes bench/results/report.json and bench/results/report.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import base64
import json
import platform
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

import curate
from curate.layout import manifest_parts
from curate.methods.icc.stage import ICC
from curate.methods.wfpp.stage import WFPP
from curate.report import write_report
from curate.report.stats import pipeline_order
from testkit.browser import view
from testkit.helpers import caption_length

RESULTS = Path(__file__).parent / "results"
MAX_LOAD_S, MAX_MB = 2.0, 5.0


def cheap_run(data: Path, out: Path) -> Path:
    """WFPP, ICC lexicon and caption length over the demo: every section filled, no model weights."""
    pipeline = curate.Pipeline(
        [WFPP(), ICC(), caption_length],
        [curate.KeepFraction("wfpp.score", 0.9), curate.Threshold("caption_length.len", min=8),
         curate.KeepFraction("icc.score", 0.9)], id_column="id", name="demo-cheap")
    curate.run(pipeline, data, out, executor="local")
    return out


def page_parts(page: str) -> dict[str, int]:
    """Bytes of the page by kind: SVG figures, WebP thumbnails, everything else."""
    figures = sum(len(m) for m in re.findall(r"data:image/svg\+xml;base64,[^\"]+", page))
    thumbs = re.findall(r"data:image/webp;base64,[^\"]+", page)
    return {"figures": figures, "thumbnails": sum(len(t) for t in thumbs), "thumbnail_count": len(thumbs),
            "rest": len(page.encode()) - figures - sum(len(t) for t in thumbs)}


def original_image_bytes(page: str, summary: dict) -> int:
    """Base64 bytes of the sampled rows' original images (what embedding them unreduced would cost)."""
    ids = set(re.findall(r'<img src="data:image/webp;base64,[^"]+" alt="([^"]+)"', page))
    t = pq.read_table(summary["data"], columns=["id", "image"])
    mask = [i in ids for i in t.column("id").to_pylist()]
    return sum(len(base64.b64encode(b)) for b in t.filter(mask).column("image").to_pylist() if b)


def measure(run_dir: Path, loads: int) -> dict:
    t0 = time.perf_counter()
    page_path = write_report(run_dir, Path(tempfile.mkdtemp()) / "report.html")
    seconds = time.perf_counter() - t0
    page = page_path.read_text()
    summary = curate.load_summary(run_dir)
    _, stages = pipeline_order(pq.read_schema(manifest_parts(run_dir)[0]))
    views = [view(page_path) for _ in range(loads)]
    load_ms = [v.load_ms for v in views]
    size = page_path.stat().st_size
    parts = page_parts(page)
    return {
        "run": str(run_dir), "pipeline": summary["pipeline"], "rows": summary["result"]["in"],
        "stages": stages, "policies": list(summary["policies"]),
        "report_seconds": round(seconds, 2), "page_bytes": size, "page_mb": round(size / 2**20, 3),
        "parts": parts, "reference_original_images_bytes": original_image_bytes(page, summary),
        "load_ms_median": round(statistics.median(load_ms), 1), "load_ms_max": round(max(load_ms), 1),
        "loads": loads, "console_messages": sum(len(v.console) for v in views),
        "broken_images": views[0].broken_images, "sections": views[0].sections,
        "ok": max(load_ms) < 1000 * MAX_LOAD_S and size < MAX_MB * 2**20 and not any(v.console for v in views),
    }


def markdown(result: dict) -> str:
    intro = (f"{result['machine']}. Targets (issue 9): the page opens in under {MAX_LOAD_S:g} s and stays under "
             f"{MAX_MB:g} MB. Load = navigation start to the end of the load event in headless Chromium "
             f"{result['chromium']}, a fresh browser and profile per load.")
    header = ("| run | rows | stages | report s | page MB | figures KB | thumbnails KB (n) | rest KB "
              "| original images KB (reference) | load ms median / max | console | broken images | targets |")
    lines = ["# Report benchmark", "", intro, "", header, "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        p = r["parts"]
        lines.append(
            f"| {r['pipeline']} | {r['rows']:,} | {', '.join(r['stages'])} | {r['report_seconds']} | {r['page_mb']} "
            f"| {p['figures'] / 1024:.0f} | {p['thumbnails'] / 1024:.0f} ({p['thumbnail_count']}) | {p['rest'] / 1024:.0f} "
            f"| {r['reference_original_images_bytes'] / 1024:.0f} | {r['load_ms_median']} / {r['load_ms_max']} "
            f"| {r['console_messages']} | {r['broken_images']} | {'met' if r['ok'] else 'MISSED'} |")
    note = ("Thumbnails are WebP, longest side 112 px, at most 12 per gallery; figures are matplotlib SVG "
            "(no JavaScript on the page). The reference column is what the same galleries would weigh with "
            "the sampled rows' original PNGs embedded.")
    lines += ["", note, ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/demo")
    ap.add_argument("--run-dir", action="append", default=[], help="a finished run to report on as well")
    ap.add_argument("--loads", type=int, default=5)
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / ".complete").exists():
        from curate.data.demo import build_demo

        build_demo(data, progress=False)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        runs.append(measure(cheap_run(data.resolve(), Path(tmp) / "demo-cheap"), args.loads))
        for rd in args.run_dir:
            runs.append(measure(Path(rd), args.loads))
    chromium = subprocess.run(["chromium", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs shared with other "
                         f"jobs (load average {load} at the end), Python {platform.python_version()}",
              "chromium": chromium, "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "report.md").write_text(markdown(result))
    print(markdown(result), flush=True)


if __name__ == "__main__":
    main()
