"""The report's figures, drawn with matplotlib and embedded as SVG data URIs.

Static SVG needs no JavaScript, so the page works offline, cannot fail to load a script, and stays
small (a histogram is ~15 KB); an inline plotly.js alone would be ~4.5 MB.
"""
from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

KEPT_COLOR, DROP_COLOR, ERR_COLOR, CUT_COLOR = "#2f7d32", "#c0392b", "#7f8c8d", "#1f4e9c"
_RC = {"svg.fonttype": "none", "svg.hashsalt": "curate", "font.size": 9, "axes.spines.top": False,
       "axes.spines.right": False, "axes.titlesize": 10}


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, imported on first use (`import curate` stays light)."""
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    return plt


def _uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    _pyplot().close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def _cuts(ax, cuts: list[tuple[str, str, float]]) -> None:
    lo, hi = ax.get_xlim()
    for i, (policy, label, value) in enumerate(cuts):
        ax.axvline(value, color=CUT_COLOR, linestyle="--", linewidth=1.2)
        right = value > (lo + hi) / 2  # label inside the axes, so the figure keeps its width
        ax.annotate(f"{policy} {label} {value:.4g}", xy=(value, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(-3 if right else 3, -10 - 11 * i), textcoords="offset points", color=CUT_COLOR,
                    fontsize=8, ha="right" if right else "left")


def histogram(column: str, counts: np.ndarray, edges: np.ndarray, cuts: list[tuple[str, str, float]]) -> str:
    """Row counts per score bin, with each policy cut on this column as a dashed line."""
    plt = _pyplot()
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(4.6, 2.6))
        ax.stairs(counts, edges, fill=True, color="#9db4d3", edgecolor="#4a6a94")
        if counts.max(initial=0) > 0 and counts.max() > 50 * max(np.median(counts[counts > 0]), 1):
            ax.set_yscale("log")  # a heavy peak would flatten every other bin
        _cuts(ax, cuts)
        ax.set_title(f"{column}: histogram")
        ax.set_xlabel(column)
        ax.set_ylabel("rows")
        return _uri(fig)


def sweep(column: str, thresholds: np.ndarray, kept: np.ndarray, keep_above: bool, valid: int,
          cuts: list[tuple[str, str, float]]) -> str:
    """Rows kept as the threshold moves (score >= t, or <= t for policies that keep low scores)."""
    plt = _pyplot()
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(4.6, 2.6))
        ax.plot(thresholds, kept, color=KEPT_COLOR, linewidth=1.5)
        _cuts(ax, cuts)
        ax.set_ylim(0, max(valid, 1) * 1.05)
        ax.set_title(f"{column}: rows kept by {'score >= t' if keep_above else 'score <= t'}")
        ax.set_xlabel("threshold t")
        ax.set_ylabel(f"rows kept (of {valid})")
        return _uri(fig)


def accounting(names: list[str], kept: list[int], dropped: list[int], errored: list[int]) -> str:
    """One horizontal stacked bar per policy (and the run): kept, dropped, errored."""
    plt = _pyplot()
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.42 * len(names)))
        y = np.arange(len(names))[::-1]
        k, d, e = (np.asarray(a, float) for a in (kept, dropped, errored))
        ax.barh(y, k, color=KEPT_COLOR, label="kept")
        ax.barh(y, d, left=k, color=DROP_COLOR, label="dropped")
        ax.barh(y, e, left=k + d, color=ERR_COLOR, label="errored")
        ax.set_yticks(y, names)
        ax.set_xlabel("rows")
        ax.legend(ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
        return _uri(fig)


def timing(names: list[str], seconds: list[float]) -> str:
    """Wall seconds per phase of the run."""
    plt = _pyplot()
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.32 * len(names)))
        y = np.arange(len(names))[::-1]
        ax.barh(y, seconds, color="#4a6a94")
        ax.set_yticks(y, names)
        ax.set_xlabel("seconds (wall)")
        for yi, s in zip(y, seconds):
            ax.annotate(f"{s:.3g} s", xy=(s, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        return _uri(fig)


def split_histogram(column: str, groups: dict[str, np.ndarray], edges: np.ndarray,
                    cuts: list[tuple[str, str, float]]) -> str:
    """Row counts per bin for several groups of rows (e.g. matched and unmatched), overlaid."""
    plt = _pyplot()
    colors = [KEPT_COLOR, DROP_COLOR, ERR_COLOR, CUT_COLOR]
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(4.6, 2.6))
        for (label, counts), color in zip(groups.items(), colors):
            ax.stairs(counts, edges, fill=False, color=color, linewidth=1.4, label=f"{label} ({int(counts.sum()):,})")
        _cuts(ax, cuts)
        ax.legend(frameon=False, fontsize=8, loc="upper center")
        ax.set_title(f"{column}: histogram by outcome")
        ax.set_xlabel(column)
        ax.set_ylabel("rows")
        return _uri(fig)


def line_chart(title: str, x_label: str, y_label: str, series: dict[str, tuple[Any, Any]],
               cuts: list[tuple[str, str, float]]) -> str:
    """Curves y(x), one per series, with the cuts as dashed lines."""
    plt = _pyplot()
    colors = [CUT_COLOR, KEPT_COLOR, DROP_COLOR, ERR_COLOR]
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(4.6, 2.6))
        for (label, (xs, ys)), color in zip(series.items(), colors):
            ax.plot(np.asarray(xs, float), np.asarray(ys, float), color=color, linewidth=1.5, label=label)
        _cuts(ax, cuts)
        if len(series) > 1:
            ax.legend(frameon=False, fontsize=8, loc="lower right")
        ax.set_title(title)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        return _uri(fig)


def scatter(title: str, x_label: str, y_label: str, groups: dict[str, tuple[Any, Any]],
            x_cuts: list[tuple[str, float]], y_cuts: list[tuple[str, float]], log: bool) -> str:
    """Points per group of rows (kept, dropped, ...), with the cuts on either axis as dashed lines."""
    plt = _pyplot()
    colors = [KEPT_COLOR, DROP_COLOR, ERR_COLOR, CUT_COLOR, "#b7950b", "#8e44ad"]
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(4.6, 3.2))
        for (label, (xs, ys)), color in zip(groups.items(), colors):
            ax.scatter(np.asarray(xs, float), np.asarray(ys, float), s=4, alpha=0.5, color=color, linewidths=0,
                       label=f"{label} ({len(xs):,})", rasterized=len(xs) > 2000)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        for label, v in x_cuts:
            ax.axvline(v, color=CUT_COLOR, linestyle="--", linewidth=1.2)
            ax.annotate(f"{label} {v:.4g}", xy=(v, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                        textcoords="offset points", color=CUT_COLOR, fontsize=8)
        for label, v in y_cuts:
            ax.axhline(v, color=CUT_COLOR, linestyle="--", linewidth=1.2)
            ax.annotate(f"{label} {v:.4g}", xy=(1.0, v), xycoords=("axes fraction", "data"), xytext=(-3, 3),
                        textcoords="offset points", color=CUT_COLOR, fontsize=8, ha="right")
        if groups:
            ax.legend(frameon=False, fontsize=8, loc="best", markerscale=3)
        ax.set_title(title)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        return _uri(fig)
