"""image_info on the demo's real PNGs: header-only reads against full decodes, and seeded damage found by kind.

    python -m bench.image_info [--data data/demo] [--repeats 3]

Speed: every demo image held in memory, scored on one thread (per-core rows/s) by the stage as configured
(`verify: false`, the header path; `verify: true`, every frame decoded) and by the reference, a plain Pillow
`Image.open` + `load` loop over the same bytes; the three alternate, `--repeats` times each, and each is
reported as min / median / max rows/s with the ratio of medians to the reference (issue 29's goal: at least
10x on the header path).

Damage: a copy of the demo with rows damaged in each way (cut in half, emptied, replaced by random bytes,
resized to 16 x 16, resized to 1800 x 200: 9:1 with the shorter side at the minimum, pixel data zeroed behind
an intact header), run through
`curate.run(..., executor="local")` with the `image_size` policy at its defaults (DataComp's basic filter),
header-only and with `verify`: each damaged row must be reported under its kind, and no undamaged row may
be an error. Writes bench/results/image_info.json and .md.
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from PIL import Image

import curate
from curate.config import pipeline_from_dict
from curate.methods.images import ImageInfo

HERE = Path(__file__).parent
RESULTS = HERE / "results"
DAMAGE = ("truncated", "empty", "random", "tiny", "wide", "zeroed_pixels")
PER_DAMAGE = 40
# What each damage must be reported as, header-only and with verify: outcomes (an error kind, or the policy's
# drop reason without its numbers); zeroed pixel data behind an intact header is found by decoding only.
EXPECTED = {"truncated": (["error: truncated_image"],) * 2,
            "empty": (["error: empty_bytes"],) * 2,
            "random": (["error: not_an_image"],) * 2,
            "tiny": (["dropped: image_size: min side"],) * 2,
            "wide": (["dropped: image_size: aspect ratio"],) * 2,
            "zeroed_pixels": ([], ["error: corrupt_image"])}


def pillow_load(values: list[bytes]) -> int:
    """The reference: open and fully decode each image, as a plain loop would."""
    for v in values:
        with Image.open(io.BytesIO(v)) as img:
            img.load()
    return len(values)


def speed(values: list[bytes], repeats: int) -> dict:
    table = pa.table({"image": pa.array(values, pa.binary())})
    runs = {"header": lambda: ImageInfo(workers=1).score(table).num_rows,
            "verify": lambda: ImageInfo(workers=1, verify=True).score(table).num_rows,
            "pillow_open_load": lambda: pillow_load(values)}
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            n = fn()
            rates[name].append(n / (time.perf_counter() - t0))
    ref = statistics.median(rates["pillow_open_load"])
    return {k: {"min": min(v), "median": statistics.median(v), "max": max(v),
                "ratio_to_reference": statistics.median(v) / ref} for k, v in rates.items()}


def damage(kind: str, data: bytes, rng: np.random.Generator) -> bytes:
    if kind == "truncated":
        return data[: len(data) // 2]
    if kind == "empty":
        return b""
    if kind == "random":
        return rng.integers(0, 256, len(data), np.uint8).tobytes()
    img = Image.open(io.BytesIO(data))
    if kind in ("tiny", "wide"):
        out = io.BytesIO()
        img.resize((16, 16) if kind == "tiny" else (1800, 200)).save(out, "PNG")
        return out.getvalue()
    raw = bytearray(data)  # zeroed_pixels: 64 bytes of the first IDAT chunk, header and IEND intact
    at = raw.index(b"IDAT") + 8
    raw[at: at + 64] = bytes(64)
    return bytes(raw)


def damaged_copy(table: pa.Table, ok: list[bool], folder: Path, seed: int = 0) -> dict[str, str]:
    """The demo with PER_DAMAGE rows of each damage (readable rows large enough to damage); id -> damage or ''."""
    rng = np.random.default_rng(seed)
    images = table.column("image").to_pylist()
    big = [i for i, v in enumerate(images) if ok[i] and len(v) > 2000]
    picks = rng.choice(big, PER_DAMAGE * len(DAMAGE), replace=False)
    label = [""] * len(images)
    for k, i in enumerate(picks):
        label[i] = DAMAGE[k // PER_DAMAGE]
        images[i] = damage(label[i], images[i], rng)
    ids = table.column("id").to_pylist()
    out = pa.table({"id": ids, "image": pa.array(images, pa.binary()), "caption": table.column("caption")})
    folder.mkdir(parents=True)
    per = -(-out.num_rows // 8)
    for s in range(8):
        pq.write_table(out.slice(s * per, per), folder / f"part-{s:05d}.parquet")
    return dict(zip(ids, label))


def outcome(row: dict) -> str:
    """`kept`, `error: <kind>` or `dropped: <reason without its numbers>`."""
    if row["error"]:
        return "error: " + row["error"].split(": ", 2)[1]
    return "kept" if row["keep"] else "dropped: " + re.sub(r" [\d.]+ [<>] [\d.]+$", "", row["drop_reason"])


def damage_check(table: pa.Table, ok: list[bool], work: Path) -> dict:
    labels = damaged_copy(table, ok, work / "data")
    found = {}
    for mode, verify in (("header", False), ("verify", True)):
        pipeline, _ = pipeline_from_dict({"name": "img", "id_column": "id",
                                          "stages": [{"type": "image_info", "verify": verify}],
                                          "policies": [{"type": "image_size"}]})
        t0 = time.perf_counter()
        summary = curate.run(pipeline, str(work / "data"), str(work / f"run-{mode}"), executor="local",
                             progress=curate.Progress(enabled=False))
        seconds = time.perf_counter() - t0
        rows = curate.load_manifest(work / f"run-{mode}").to_pylist()
        by = collections.defaultdict(collections.Counter)
        for r in rows:
            by[labels[r["id"]] or "undamaged"][outcome(r)] += 1
        want = {k: v[0 if mode == "header" else 1] for k, v in EXPECTED.items()}
        right = {k: sum(n for o, n in by[k].items() if o in want[k]) for k in DAMAGE}
        found[mode] = {"rows": len(rows), "seconds": seconds, "result": summary["result"],
                       "outcomes": {k: dict(v) for k, v in by.items()}, "reported_right": right,
                       "undamaged_errors": sum(n for o, n in by["undamaged"].items() if o.startswith("error"))}
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/demo")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    table = ds.dataset(a.data).to_table(columns=["id", "image", "caption"])
    info = ImageInfo(workers=2).score(table)
    errors = info.column("error").to_pylist()
    ok = [e is None for e in errors]
    # The speed set is the images every path can read: the demo's own over-limit drawings (up to 623 M
    # pixels) would take the reference minutes and gigabytes each, and the stage refuses them unread.
    values = [v for v, good in zip(table.column("image").to_pylist(), ok) if good]
    result = {"rows": table.num_rows, "readable_rows": len(values),
              "formats": dict(collections.Counter(info.column("format").to_pylist())),
              "demo_errors": dict(collections.Counter(e.split(":")[0] for e in errors if e)),
              "bytes": sum(map(len, values)),
              "speed_rows_per_s_one_thread": speed(values, a.repeats), "repeats": a.repeats,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "pillow": PIL.__version__}}
    with tempfile.TemporaryDirectory() as tmp:
        result["damage"] = damage_check(table, ok, Path(tmp))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "image_info.json").write_text(json.dumps(result, indent=1, default=str))
    (RESULTS / "image_info.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    lines = ["# image_info on the demo images (`python -m bench.image_info`)", "",
             f"{r['rows']:,} demo rows (formats: {r['formats']}); the demo's own errors, found header-only: "
             f"{r['demo_errors']} (real openclipart renders of up to 623 M pixels, over Pillow's bomb limit). "
             f"Speed on the {r['readable_rows']:,} readable images ({r['bytes'] / 1e6:.1f} MB), held in memory, "
             f"scored on one thread; {r['repeats']} alternating runs each, on a {r['machine']['cpus']}-CPU machine "
             "shared with other jobs (timings are noisy).", "",
             "| path | rows/s min | median | max | median vs Pillow open + load |", "|---|---|---|---|---|"]
    names = {"header": "`image_info` header-only (default)", "verify": "`image_info` with `verify: true`",
             "pillow_open_load": "reference: Pillow `open` + `load` loop"}
    for k, s in r["speed_rows_per_s_one_thread"].items():
        lines.append(f"| {names[k]} | {s['min']:,.0f} | {s['median']:,.0f} | {s['max']:,.0f} | "
                     f"{s['ratio_to_reference']:.2f}x |")
    lines += ["", f"## Seeded damage ({PER_DAMAGE} rows of each kind, through `curate.run`, image_size at its "
              "defaults: min side 200, aspect ratio <= 3)", "",
              "| damage | expected (header-only) | reported right | expected (verify) | reported right |",
              "|---|---|---|---|---|"]
    for k in DAMAGE:
        h, v = (" or ".join(w) or "not detectable" for w in EXPECTED[k])
        lines.append(f"| {k} | {h} | {r['damage']['header']['reported_right'][k]} | {v} | "
                     f"{r['damage']['verify']['reported_right'][k]} |")
    for mode in ("header", "verify"):
        d = r["damage"][mode]
        lines += ["", f"**{mode}**: {d['rows']:,} rows in {d['seconds']:.1f} s (whole run); undamaged rows in error: "
                  f"{d['undamaged_errors']} (the demo's own, as above); outcomes of undamaged rows: "
                  f"{d['outcomes']['undamaged']}; "
                  f"zeroed_pixels rows: {d['outcomes'].get('zeroed_pixels')}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
