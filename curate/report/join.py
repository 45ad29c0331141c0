"""The report's join section, for runs with an Auto-FuzzyJoin (`autofj`) stage: the program and its
column weights, the estimate with its new-entity share and warnings, the nearest distance of matched
vs unmatched rows, and the matches closest to their threshold (the ones most worth checking by eye).

Read from summary.json, the manifest (streamed part by part), the input shards (R's join values of the
sampled rows) and the reference table (L's values of their matches)."""
from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.layout import Part
from curate.report import plots

BINS = 40
NEAR_THRESHOLD = 12  # matches shown, those with the largest distance / θ of the configuration that fired


def join_sections(summary: dict[str, Any], parts: list[Path]) -> list[dict[str, Any]]:
    """One entry per autofj stage of the run (none for other runs)."""
    out = []
    for name, st in summary.get("stages", {}).items():
        art = st.get("artifact") or {}
        if st.get("type") != "autofj" or "program" not in art:
            continue
        out.append(_section(name, st, art, summary, parts))
    return out


def _section(name: str, st: dict[str, Any], art: dict[str, Any], summary: dict[str, Any],
             parts: list[Part]) -> dict[str, Any]:
    prog = art["program"]
    thetas = {f"{c['function']}@{c['theta']:.6g}": c["theta"] for c in prog.get("configs") or []}
    col = lambda c: f"{name}.{c}"  # noqa: E731
    matched_d: list[np.ndarray] = []
    unmatched_d: list[np.ndarray] = []
    closest: list[tuple[float, int, dict[str, Any]]] = []
    counter = 0
    for part in parts:
        t = part.read(["id", "shard", col("matched"), col("match_id"), col("config"),
                                         col("distance"), col("nearest"), col("est_precision")])
        hit = t.column(col("matched")).to_numpy(zero_copy_only=False).astype(bool)
        near = pc.fill_null(t.column(col("nearest")), np.nan).to_numpy(zero_copy_only=False)
        matched_d.append(near[hit])
        unmatched_d.append(near[~hit])
        rows = np.flatnonzero(hit)
        configs = t.column(col("config")).to_pylist()
        dist = pc.fill_null(t.column(col("distance")), np.nan).to_numpy(zero_copy_only=False)
        for i in rows.tolist():
            th = thetas.get(configs[i])
            ratio = dist[i] / th if th else 0.0
            counter += 1
            item = (float(ratio), counter, {"id": str(t.column("id")[i].as_py()), "shard": t.column("shard")[i].as_py(),
                                            "row": i, "match_id": t.column(col("match_id"))[i].as_py(),
                                            "config": configs[i], "distance": float(dist[i]),
                                            "est": t.column(col("est_precision"))[i].as_py()})
            if len(closest) < NEAR_THRESHOLD:
                heapq.heappush(closest, item)
            elif item[0] > closest[0][0]:
                heapq.heapreplace(closest, item)
    m = np.concatenate(matched_d) if matched_d else np.zeros(0)
    u = np.concatenate(unmatched_d) if unmatched_d else np.zeros(0)
    finite = np.concatenate([m[np.isfinite(m)], u[np.isfinite(u)]])
    figure = None
    first = (prog.get("configs") or [None])[0]
    if len(finite):
        edges = np.linspace(finite.min(), max(finite.max(), finite.min() + 1e-9), BINS + 1)
        groups = {"matched": np.histogram(m[np.isfinite(m)], edges)[0],
                  "unmatched": np.histogram(u[np.isfinite(u)], edges)[0]}
        cuts = [("θ", first["function"], first["theta"])] if first else []
        figure = plots.split_histogram(f"{name}.nearest", groups, edges, cuts)
    samples = [x[2] for x in sorted(closest, key=lambda x: -x[0])]
    _fill_values(samples, summary, st)
    return {"name": name, "art": art, "program": prog, "figure": figure,
            "first_function": first["function"] if first else None, "samples": samples,
            "unmatched_no_distance": int((~np.isfinite(u)).sum())}


def _fill_values(samples: list[dict[str, Any]], summary: dict[str, Any], st: dict[str, Any]) -> None:
    """R's and L's join values of the sampled matches (a note instead where they cannot be read)."""
    params = st.get("params", {})
    on = params.get("on")
    on = [on] if isinstance(on, str) else list(on or [])
    for s in samples:
        s["right"], s["left"] = None, None
    if not samples or not on:
        return
    try:
        ref = Path(params["reference"])
        ids = pa.array(sorted({s["match_id"] for s in samples}), pa.string())
        if ref.suffix.lower() == ".csv":
            import pyarrow.csv as pcsv

            names = pcsv.read_csv(ref, read_options=pcsv.ReadOptions(block_size=1 << 16)).column_names
            table = pcsv.read_csv(ref, convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in names}, include_columns=[params.get("reference_id", "id"), *on]))
        else:
            import pyarrow.dataset as pds

            table = pds.dataset(str(ref), format="parquet").to_table(columns=[params.get("reference_id", "id"), *on])
        key = table.column(params.get("reference_id", "id")).cast(pa.string())
        table = table.filter(pc.is_in(key, ids))
        lookup = {str(r[params.get("reference_id", "id")]): " | ".join(str(r[c] or "") for c in on)
                  for r in table.to_pylist()}
        for s in samples:
            s["left"] = lookup.get(str(s["match_id"]))
    except (OSError, KeyError, pa.ArrowException) as e:
        for s in samples:
            s["left"] = f"(reference not readable here: {e})"
    from curate.dataset import Dataset
    from curate.errors import CurateError

    try:
        dataset = Dataset(summary["data"], format=summary.get("format"))
        shards = {s.rel: s for s in dataset.shards}
        for rel in {s["shard"] for s in samples}:
            group = [s for s in samples if s["shard"] == rel]
            pf = dataset.open(shards[rel])
            t = pf.read(columns=on)
            for s in group:
                s["right"] = " | ".join(str(t.column(c)[s["row"]].as_py() or "") for c in on)
    except (CurateError, OSError, KeyError, pa.ArrowException) as e:
        for s in samples:
            s["right"] = f"(input not readable here: {e})"
