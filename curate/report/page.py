"""The report page: summary.json and the manifest statistics rendered through the Jinja template."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import markupsafe
import yaml

from curate.layout import load_summary, manifest_parts
from curate.policy import Policy
from curate.presentation import num
from curate.report import blocks, gallery, plots
from curate.report.details import as_blocks
from curate.report.narrative import counting_note, pct, where_rows_went
from curate.report.sections import SECTIONS
from curate.report.stats import (
    MAX_PATTERNS,
    PER_GALLERY,
    keeps_above,
    pipeline_order,
    policy_cuts,
    scan_manifest,
)
from curate.report.view import RunDirectory, presenters
from curate.storage import AnyPath

_TEMPLATE = Path(__file__).with_name("page.html.j2")
_ATTR = re.compile(r"[a-z][a-z0-9_-]*")


def render(run_dir: AnyPath, seed: int = 0, per_gallery: int | None = None) -> str:
    """The report page as one HTML string."""
    import jinja2

    summary = load_summary(run_dir)
    parts = manifest_parts(run_dir)
    if parts:  # summary.json sorts its keys; show stages and policies in pipeline order
        order_p, order_s = pipeline_order(parts[0].schema())
        for key, order in (("policies", order_p), ("stages", order_s)):
            entries = summary.get(key, {})
            summary[key] = {k: entries[k] for k in sorted(entries, key=lambda k: (k not in order, order.index(k)
                                                                                   if k in order else 0, k))}
    policies: dict[str, dict[str, Any]] = summary.get("policies", {})
    score_cols = list(dict.fromkeys(p["column"] for p in policies.values() if "column" in p))
    stats = scan_manifest(parts, seed=seed, per_gallery=per_gallery or PER_GALLERY, extra_columns=score_cols)
    view = RunDirectory(run_dir, summary, seed, stats.outcomes)
    found, problems = presenters(view)
    own, not_shown = blocks.sections(view, set(SECTIONS), (found, problems))
    words = {m.name: (presenter, m) for presenter, members in found for m in members if isinstance(m, Policy)}
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = num
    env.filters["pct"] = pct
    env.filters["inline"] = blocks.inline
    env.filters["data_attrs"] = _data_attrs
    page = env.from_string(_TEMPLATE.read_text(encoding="utf-8")).render(
        s=summary, nav=[*SECTIONS[:3], *[sec["id"] for sec in own], *SECTIONS[3:]],
        title=f"curate report: {summary.get('pipeline', run_dir.name)}",
        story=[blocks.inline(t) for t in where_rows_went(summary, stats.outcomes)],
        counting=blocks.inline(counting_note()),
        accounting=_accounting(summary, stats, words), scores=_scores(stats, policies, _not_scores(summary)),
        galleries=_galleries(stats, summary, run_dir, score_cols, words), timing=_timing(summary),
        method_sections=own, not_shown=not_shown,
        config_yaml=yaml.safe_dump(summary.get("config", {}), sort_keys=False, allow_unicode=True),
        run_dir=str(run_dir))
    return page


def _data_attrs(attrs: dict[str, Any]) -> markupsafe.Markup:
    """` data-<key>="value"` for each of a block's marks (keys are checked: they name the attribute)."""
    out = []
    for k, v in attrs.items():
        if not _ATTR.fullmatch(k):
            raise ValueError(f"report: data attribute name {k!r} must be lowercase letters, digits, '-' or '_'")
        out.append(markupsafe.Markup(' data-{}="{}"').format(markupsafe.Markup(k), v))
    return markupsafe.Markup("").join(out)


def _details(entry: dict[str, Any], shown: set[str], title: str = "") -> list[dict[str, Any]]:
    """A summary entry's other keys as tables, ready for the template's `block` macro."""
    rest = {k: v for k, v in entry.items() if k not in shown}
    return [blocks.prepare(b) for b in as_blocks(rest, title)] if rest else []


def _reasons(name: str, patterns: dict[str, int], words: dict[str, tuple[Any, Any]]) -> dict[str, int]:
    """A policy's drop reasons (numbers as #) in its presenter's plain words, those that read the same summed."""
    out: dict[str, int] = {}
    for pattern, n in patterns.items():
        plain = _plain(words, name, pattern)
        out[plain] = out.get(plain, 0) + n
    ranked = sorted(out.items(), key=lambda kv: -kv[1])
    rest = sum(n for _, n in ranked[MAX_PATTERNS:])
    return dict(ranked[:MAX_PATTERNS]) | ({f"{len(ranked) - MAX_PATTERNS} other reasons": rest} if rest else {})


def _plain(words: dict[str, tuple[Any, Any]], policy: str, reason: str) -> str:
    """A drop reason (or its pattern) in the words of its policy's presenter, if it has one."""
    if policy not in words or not reason:
        return reason
    presenter, member = words[policy]
    return presenter.reason(member, reason)


def _accounting(summary: dict[str, Any], stats, words: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    r = summary["result"]
    policies = []
    for name, p in summary.get("policies", {}).items():
        policies.append({"name": name, "type": p.get("type"), "column": p.get("column"),
                         "in": p["in"], "kept": p["kept"], "dropped": p["dropped"], "errored": p["errored"],
                         "first_dropped": stats.outcomes.get(f"dropped: {name}", 0),
                         "cuts": policy_cuts(p), "patterns": _reasons(name, stats.patterns.get(name, {}), words),
                         "details": _details(p, {"type", "class", "column", "in", "kept", "dropped", "errored"})})
    stages = []
    for name, st in summary.get("stages", {}).items():
        stages.append({"name": name, "type": st.get("type"), "version": st.get("version"),
                       "rows_in": st.get("rows_in", 0), "scored": st.get("scored", 0), "errored": st.get("errored", 0),
                       "errors": st.get("errors", {}),
                       "first_errored": stats.outcomes.get(f"errored: {name}", 0),
                       "params": [blocks.prepare(b) for b in as_blocks(st.get("params", {}))],
                       "artifact": _details({"artifact": st["artifact"]}, set()) if st.get("artifact") else []})
    names = ["run", *[p["name"] for p in policies]]
    fig = plots.accounting(names, [r["kept"], *[p["kept"] for p in policies]],
                           [r["dropped"], *[p["dropped"] for p in policies]],
                           [r["errored"], *[p["errored"] for p in policies]])
    return {"figure": fig, "policies": policies, "stages": stages, "outcomes": stats.outcomes, "rows": stats.rows}


def _not_scores(summary: dict[str, Any]) -> set[str]:
    """The float columns the stages declare are not scores (summary.json `not_scores`): no sweep for them."""
    return {c for st in summary.get("stages", {}).values() for c in st.get("not_scores", ())}


def _scores(stats, policies: dict[str, dict[str, Any]], not_scores: set[str] = frozenset()) -> list[dict[str, Any]]:
    out = []
    for col, s in stats.scores.items():
        on_col = [(name, p) for name, p in policies.items() if p.get("column") == col]
        cuts = [(name, label, v) for name, p in on_col for label, v in policy_cuts(p)]
        above = keeps_above(on_col[0][1]) if on_col else True
        item = {"column": col, "valid": s.valid, "nulls": s.nulls, "cuts": cuts,
                "policies": [n for n, _ in on_col], "hist": None, "sweep": None}
        if s.valid:
            counts, edges = s.plot_hist()
            item["hist"] = plots.histogram(col, counts, edges, cuts)
        if s.valid and (col not in not_scores or on_col):  # a policy cutting it makes it a score after all
            t, kept = s.sweep(above)
            item["sweep"] = plots.sweep(col, t, kept, above, s.valid, cuts)
        out.append(item)
    return out


def _galleries(stats, summary: dict[str, Any], run_dir: AnyPath, score_cols: list[str],
               words: dict[str, tuple[Any, Any]]) -> list[dict[str, Any]]:
    if stats.samples is None or stats.samples.height == 0:
        return []
    rows = gallery.fetch(stats.samples, summary, run_dir)
    out: dict[str, dict[str, Any]] = {}
    for outcome in stats.outcomes:
        out[outcome] = {"outcome": outcome, "rows": [], "total": stats.outcomes[outcome],
                        "kind": outcome.split(":", 1)[0]}
    for r in rows:
        why = r.get("error") or _plain(words, r["outcome"].removeprefix("dropped: "), r.get("drop_reason") or "")
        scores = " · ".join(f"{c}={num(r[c])}" for c in score_cols if r.get(c) is not None)
        out[r["outcome"]]["rows"].append({"id": str(r["id"]), "shard": r["shard"], "why": why, "scores": scores,
                                          "thumb": r["thumb"], "text": r["text"], "note": r["note"]})
    return list(out.values())


def _timing(summary: dict[str, Any]) -> dict[str, Any]:
    phases = summary.get("phases", {})
    names = [k for k, v in phases.items() if isinstance(v, dict) and v.get("seconds") is not None]
    secs = [float(phases[k]["seconds"]) for k in names]
    stages = [{"name": n, "seconds": st.get("seconds"), "rows_per_s": st.get("rows_per_s"),
               "wall": phases.get(f"score:{n}", {}).get("seconds"),
               "wall_rows_per_s": phases.get(f"score:{n}", {}).get("rows_per_s"),
               "fit": phases.get(f"fit:{n}", {}).get("seconds"),
               "computed": st.get("units_computed"), "reused": st.get("units_reused"),
               "worker": ", ".join(f"{k} {v if isinstance(v, list) else num(v)}"
                                   for k, v in st.get("worker", {}).items())}
              for n, st in summary.get("stages", {}).items()]
    return {"figure": plots.timing(names, secs) if names else None, "phases": [(n, phases[n]) for n in names],
            "stages": stages}
