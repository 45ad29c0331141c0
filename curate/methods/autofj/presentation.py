"""What the report and the CLI show of an `autofj` stage: the program and its column weights, the estimate with
its new-entity share and warnings, the nearest distance of matched vs unmatched rows, and the matches
closest to their threshold (the ones most worth checking by eye); after a run, the match counts and the
estimate (`curate join` prints these lines).

Read from summary.json (the stage's artifact description), the manifest (streamed part by part), the
input shards (R's join values of the matches shown) and the reference table (L's values of their matches).
"""
from __future__ import annotations

import collections
import heapq
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import CurateError
from curate.methods.autofj.tables import read_table
from curate.presentation import ID, ROW, SHARD, Block, Details, Heading, Histogram, Presenter, RunView, Table, Text, num

BINS = 40
NEAR_THRESHOLD = 12  # matches shown, those with the largest distance / θ of the configuration that fired
NOT_ESTIMATED = "not estimated (mode: reference)"


class JoinPresenter(Presenter):
    id = "join"
    title = "Join"

    def section(self, run: RunView, members: Sequence[Any]) -> list[Block]:
        out: list[Block] = []
        for stage in members:
            art = run.summary["stages"][stage.name].get("artifact") or {}
            if "program" in art:
                out += _stage_blocks(stage, art, run)
        return out

    def lines(self, run: RunView, members: Sequence[Any]) -> list[str]:
        return [line for stage in members for line in _lines(stage, run)]


def _share(v: float | None) -> str:
    return f"{round(100 * v, 1)}%" if v is not None else NOT_ESTIMATED


def _stage_blocks(stage: Any, art: dict[str, Any], run: RunView) -> list[Block]:
    prog = art["program"]
    se = art.get("est_precision_se")
    estimate = Text(
        f"Estimated precision **{num(art.get('est_precision'))}**"
        + (f" ± {num(se)} (standard error)" if se is not None else "")
        + _interval_text(art)
        + f", target {num(prog.get('precision_target'))}{_on(prog)}{_risk(art)}; estimated share of new entities in R (no match in L): "
        f"**{_share(art.get('new_share'))}**; estimated share of R with no match within reach (new entities and "
        f"matches too unlike L to find; the estimate counts these): **{_share(art.get('new_entity_share'))}**; "
        f"rows far beyond every threshold: {num(art.get('far_beyond_theta_share'))}; expected matches "
        f"{num(art.get('expected_matches'))} of {num(art.get('right_rows_with_a_key'))} rows with a key.")
    configs = prog.get("configs") or []
    blocks: list[Block] = [
        Heading(f"stage {stage.name} (Auto-FuzzyJoin)"), estimate,
        *[Text(f"warning: {w}", "warning") for w in art.get("warnings") or []],
        Table(["column", "weight"], [[c, w] for c, w in (prog.get("column_weights") or {}).items()]),
        Details(f"{len(configs)} configuration(s), in the order the search added them",
                [Table(["join function", "θ"], [[c["function"], c["theta"]] for c in configs])])]
    figure, samples = _scan(stage, configs, run)
    blocks += [*figure, Heading("Matches closest to their threshold"),
               Table(["R id", "R value", "L id", "L value", "configuration", "distance", "estimate"],
                     [[s["id"], s["right"], s["match_id"], s["left"], s["config"], s["distance"], s["est"]]
                      for s in samples], empty="no matches")]
    return blocks


def _scan(stage: Any, configs: list[dict[str, Any]], run: RunView) -> tuple[list[Block], list[dict[str, Any]]]:
    """(the nearest-distance histogram, if any distance; the matches closest to their threshold)."""
    thetas = {f"{c['function']}@{c['theta']:.6g}": c["theta"] for c in configs}
    col = stage.column
    matched_d: list[np.ndarray] = []
    unmatched_d: list[np.ndarray] = []
    closest: list[tuple[float, int, dict[str, Any]]] = []
    counter = 0
    for t in run.manifest([ID, SHARD, ROW, *map(col, ("matched", "match_id", "config", "distance", "nearest",
                                                       "est_precision"))]):
        hit = t.column(col("matched")).to_numpy(zero_copy_only=False).astype(bool)
        near = pc.fill_null(t.column(col("nearest")), np.nan).to_numpy(zero_copy_only=False)
        matched_d.append(near[hit])
        unmatched_d.append(near[~hit])
        configs_of = t.column(col("config")).to_pylist()
        dist = pc.fill_null(t.column(col("distance")), np.nan).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(hit).tolist():
            th = thetas.get(configs_of[i])
            counter += 1
            item = (float(dist[i] / th if th else 0.0), counter,
                    {"id": str(t.column(ID)[i].as_py()), "shard": t.column(SHARD)[i].as_py(),
                     "row": t.column(ROW)[i].as_py(), "match_id": t.column(col("match_id"))[i].as_py(),
                     "config": configs_of[i], "distance": float(dist[i]),
                     "est": t.column(col("est_precision"))[i].as_py()})
            if len(closest) < NEAR_THRESHOLD:
                heapq.heappush(closest, item)
            elif item[0] > closest[0][0]:
                heapq.heapreplace(closest, item)
    m = np.concatenate(matched_d) if matched_d else np.zeros(0)
    u = np.concatenate(unmatched_d) if unmatched_d else np.zeros(0)
    samples = [x[2] for x in sorted(closest, key=lambda x: -x[0])]
    _fill_values(samples, stage, run)
    return _histogram(stage, configs, m, u), samples


def _histogram(stage: Any, configs: list[dict[str, Any]], m: np.ndarray, u: np.ndarray) -> list[Block]:
    finite = np.concatenate([m[np.isfinite(m)], u[np.isfinite(u)]])
    if not len(finite):
        return []
    first = configs[0] if configs else None
    edges = np.linspace(finite.min(), max(finite.max(), finite.min() + 1e-9), BINS + 1)
    groups = {"matched": np.histogram(m[np.isfinite(m)], edges)[0],
              "unmatched": np.histogram(u[np.isfinite(u)], edges)[0]}
    caption = (f"distance to the nearest L row under {first['function'] if first else None} (the program's first "
               f"function); {num(int((~np.isfinite(u)).sum()))} unmatched rows have no candidate or no key")
    return [Histogram(stage.column("nearest"), groups, edges, [("θ", first["function"], first["theta"])] if first else [],
                      caption=caption, alt="nearest distance, matched vs unmatched")]


def _fill_values(samples: list[dict[str, Any]], stage: Any, run: RunView) -> None:
    """R's and L's join values of the sampled matches (a note instead where they cannot be read)."""
    on = list(stage.on)
    for s in samples:
        s["right"], s["left"] = None, None
    if not samples:
        return
    try:
        table = read_table(stage.reference, [stage.reference_id, *on])
        ids = pa.array(sorted({s["match_id"] for s in samples}), pa.string())
        table = table.filter(pc.is_in(table.column(stage.reference_id).cast(pa.string()), ids))
        lookup = {str(r[stage.reference_id]): " | ".join(str(r[c] or "") for c in on) for r in table.to_pylist()}
        for s in samples:
            s["left"] = lookup.get(str(s["match_id"]))
    except (CurateError, OSError, KeyError, pa.ArrowException) as e:
        for s in samples:
            s["left"] = f"(reference not readable here: {e})"
    try:
        for rel in {s["shard"] for s in samples}:
            group = [s for s in samples if s["shard"] == rel]
            t = run.input_rows(rel, [s["row"] for s in group], on)
            for i, s in enumerate(group):
                s["right"] = " | ".join(str(t.column(c)[i].as_py() or "") for c in on)
    except (CurateError, OSError, KeyError, pa.ArrowException) as e:
        for s in samples:
            s["right"] = f"(input not readable here: {e})"


def _interval_text(art: dict[str, Any]) -> str:
    iv = art.get("est_precision_interval")
    return f", interval [{iv[0]:.3f}, {iv[1]:.3f}] over the new-entity models" if iv else ""


def _on(prog: dict[str, Any]) -> str:
    return " (on the interval's lower end)" if prog.get("precision_target_on") == "lower" else ""


def _risk(art: dict[str, Any]) -> str:
    """The at-risk flag on the estimate's own line: whoever reads only the estimate sees it."""
    return " — target_at_risk" if any(w.startswith("target_at_risk") for w in art.get("warnings") or []) else ""


def _lines(stage: Any, run: RunView) -> list[str]:
    """What the join did: counts from the manifest, the estimate, the new-entity share, warnings."""
    art = run.summary["stages"][stage.name].get("artifact") or {}
    rows, matched = 0, 0
    errors: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    for t in run.manifest([stage.column("matched"), stage.column("reason"), stage.column("error")]):
        ok, reason, err = (t.column(i).to_pylist() for i in range(3))  # one part at a time: counts stay in memory
        rows += len(ok)
        matched += sum(1 for v in ok if v)
        errors.update(e.split(":")[0] for e in err if e)
        reasons.update(r for r, e, hit in zip(reason, err, ok) if r and not e and not hit)
    errored = sum(errors.values())
    why = ", ".join(f"{k} {v}" for k, v in reasons.most_common())
    out = [f"{stage.name}: {rows} rows: {matched} matched, {rows - matched - errored} unmatched"
           + (f" ({why})" if why else "") + f", {errored} errored"
           + (f" ({', '.join(f'{k} {v}' for k, v in errors.items())})" if errored else "")]
    prog = art.get("program") or {}
    est, se = art.get("est_precision"), art.get("est_precision_se")
    target = prog.get("precision_target")
    if est is None:
        out.append(f"  estimated precision: none (no program reaches the target {target})")
    else:
        out.append(f"  estimated precision {est:.3f}" + (f" ± {se:.3f} (standard error)" if se is not None else "")
                   + _interval_text(art) + f", target {target}{_on(prog)}{_risk(art)}")
    new, share = art.get("new_share"), art.get("new_entity_share")
    out.append("  estimated share of new entities in R (no match in L): "
               + (f"{new:.1%}" if new is not None else NOT_ESTIMATED))
    out.append("  estimated share of R with no match within reach (new entities and matches too unlike L to find; "
               "the precision estimate counts these): " + (f"{share:.1%}" if share is not None else NOT_ESTIMATED)
               + f"; rows far beyond every threshold: {art.get('far_beyond_theta_share') or 0:.1%}")
    cols = ", ".join(f"{c} {w:.2f}" for c, w in (prog.get("column_weights") or {}).items())
    out.append(f"  program: {len(prog.get('configs') or [])} configuration(s)" + (f" on columns {cols}" if cols else ""))
    out += [f"  warning: {w}" for w in art.get("warnings") or []]
    return out
