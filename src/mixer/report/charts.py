"""Charts as inline SVG, drawn with matplotlib.

Why matplotlib: it is the most widely kept Python plotting library, draws offline with no
browser or JavaScript, and its SVG is plain markup that we inline, so the report needs no
script at all (Plotly's inlined JavaScript alone is 4.8 MB, over the report's 2 MB budget;
Vega-Lite needs three inlined scripts and a JS engine to draw). Text stays text
(``svg.fonttype = none``), which keeps each chart a few kilobytes and uses the reader's own
sans-serif font: no font is embedded or fetched. Output is deterministic (fixed hash salt,
no date), so the same folder gives the same report bytes.

Every function takes plain numbers and returns one ``<svg>`` string; no pyplot global state.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

_STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "mixer-report",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "legend.frameon": False,
    "legend.fontsize": 8,
}
MANY = 10  # above this many sources a chart drops per-item labels and legends (the tables have them)
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac"]
BUCKET_COLOURS = {
    "rejected": "#e15759", "deduplicated": "#f28e2b", "decontaminated": "#b07aa1", "filtered": "#9c755f",
    "validation written": "#76b7b2", "validation not written": "#bab0ac", "train not selected": "#d4d4d4",
    "train selected": "#4e79a7",
}


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: inline in HTML
    # scale with the page: keep the viewBox, drop the fixed size in points
    # scale with the page up to 1.6x the drawn size (the same text size in every chart)
    width = float(re.search(r'<svg[^>]*? width="([0-9.]+)pt"', text).group(1))
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
                  rf'<svg\1 class="chart" style="max-width:{width * 1.6:.0f}px"', text, count=1)
    # comments, blank runs and sub-pixel digits only cost bytes (a path with 40 sources x 40
    # bins is mostly coordinates: two decimals of a point are invisible at any zoom a page allows)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r'( d="[^"]*")', lambda m: re.sub(r"(\d+\.\d\d)\d+", r"\1", m.group(1)), text)
    return re.sub(r">\s+<", "><", text).strip()


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def _rows_height(n: int, per: float = 0.32, base: float = 1.0) -> float:
    return base + per * max(n, 1)


def shares(names: Sequence[str], series: dict[str, Sequence[float | None]], title: str) -> str:
    """Grouped horizontal bars: one group per source, one bar per series (target, realised, ...)."""
    with matplotlib.rc_context(_STYLE):
        fig = _figure(7.5, _rows_height(len(names) * max(len(series), 1) / 2.2, base=1.2))
        ax = fig.subplots()
        height = 0.8 / max(len(series), 1)
        y = np.arange(len(names))
        greys = ["#bab0ac", "#4e79a7", "#59a14f", "#f28e2b", "#76b7b2"]
        for k, (label, values) in enumerate(series.items()):
            vals = np.array([np.nan if v is None else v for v in values], dtype=float)
            pos = y - 0.4 + height * (k + 0.5)
            ax.barh(pos, np.nan_to_num(vals), height=height * 0.92, label=label, color=greys[k % len(greys)])
            for p, v in zip(pos, vals):
                if not np.isnan(v) and len(names) <= MANY:
                    ax.text(v, p, f" {v:.1%}", va="center", fontsize=7)
        ax.set_yticks(y, list(names))
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlim(0, max(0.05, min(1.0, _max(series) * 1.18)))
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(fig)


def _max(series: dict[str, Sequence[float | None]]) -> float:
    return max([v for values in series.values() for v in values if v is not None] or [0.0])


def flow(names: Sequence[str], buckets: dict[str, Sequence[int]], title: str) -> str:
    """One 100% stacked bar per source: where each row read went."""
    with matplotlib.rc_context(_STYLE):
        fig = _figure(7.5, _rows_height(len(names), 0.42, 1.5))
        ax = fig.subplots()
        totals = np.array([sum(values[i] for values in buckets.values()) for i in range(len(names))], dtype=float)
        totals[totals == 0] = 1
        left = np.zeros(len(names))
        for label, values in buckets.items():
            frac = np.array(values, dtype=float) / totals
            if not frac.any():
                continue
            ax.barh(names, frac, left=left, color=BUCKET_COLOURS.get(label, "#999"), label=label, height=0.6)
            for i, (f, v) in enumerate(zip(frac, values)):
                if f > 0.07 and len(names) <= MANY:
                    ax.text(left[i] + f / 2, i, f"{v:,}", ha="center", va="center", fontsize=7,
                            color="white" if label in ("train selected", "rejected") else "black")
            left += frac
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel("share of rows read")
        ax.set_title(title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(names) < 3 else -0.18), ncol=4)
        return _svg(fig)


def _log_bins(arrays: list[np.ndarray]) -> tuple[int, int, np.ndarray]:
    values = [v for v in arrays if len(v)]
    lo = max(1, int(min(v.min() for v in values))) if values else 1
    hi = max(lo + 1, int(max(v.max() for v in values))) if values else 2
    return lo, hi, np.unique(np.geomspace(lo, hi + 1, 40).round())


def _length_axes(ax: Any, per_source: dict[str, np.ndarray], colours: dict[str, str], title: str,
                 xlabel: str, legend: bool) -> None:
    lo, hi, bins = _log_bins(list(per_source.values()))
    for name, v in per_source.items():
        if len(v):
            ax.hist(np.clip(v, lo, hi), bins=bins, weights=np.full(len(v), 1 / len(v)), histtype="step",
                    linewidth=1.6, color=colours[name], label=f"{name} (median {int(np.median(v)):,})")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if legend:
        ax.legend()


def lengths(per_source: dict[str, np.ndarray], title: str, xlabel: str) -> str:
    """Step histograms on log-spaced bins, one per source, as a share of the source's rows."""
    return length_panels({title: per_source}, xlabel)


def length_panels(panels: dict[str, dict[str, np.ndarray]], xlabel: str) -> str:
    """One log-binned step-histogram panel per measure (whole row, turns, assistant), a line
    per source in the same colour across panels; each panel's legend gives the medians."""
    with matplotlib.rc_context(_STYLE):
        names = list(dict.fromkeys(n for p in panels.values() for n in p))
        colours = {n: colour(i) for i, n in enumerate(names)}
        fig = _figure(7.5 if len(panels) == 1 else 11.0, 2.9)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (title, per_source) in zip(axes, panels.items()):
            _length_axes(ax, per_source, colours, title, xlabel, legend=len(per_source) <= MANY)
        axes[0].set_ylabel("share of the source's rows")
        return _svg(fig)


def bars(labels: Sequence[str], values: Sequence[float], title: str, xlabel: str = "",
         marks: Sequence[float | None] | None = None, mark_label: str = "", fmt: str = "{:,.0f}",
         percent: bool = False) -> str:
    """Horizontal bars with value labels; ``marks`` draws a tick per bar (e.g. the cap or the p)."""
    with matplotlib.rc_context(_STYLE):
        fig = _figure(7.5, _rows_height(len(labels), 0.3, 1.0))
        ax = fig.subplots()
        y = np.arange(len(labels))
        ax.barh(y, values, color=[colour(i) for i in range(len(labels))], height=0.62)
        for i, v in enumerate(values):
            ax.text(v, i, " " + fmt.format(v), va="center", fontsize=7)
        if marks is not None:
            pts = [(m, i) for i, m in enumerate(marks) if m is not None]
            if pts:
                ax.scatter([m for m, _ in pts], [i for _, i in pts], marker="|", s=260, linewidths=2.2,
                           color="black", label=mark_label, zorder=3)
                ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        top = max(list(values) + [m for m in (marks or []) if m is not None] + [0])
        ax.set_xlim(0, (top or 1) * 1.2)
        ax.set_yticks(y, list(labels))
        ax.invert_yaxis()
        if percent:
            ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        return _svg(fig)


def counts(per_source: dict[str, dict[int, int]], title: str, xlabel: str) -> str:
    """Grouped vertical bars of a small integer (tools per row), as a share of each source's rows."""
    with matplotlib.rc_context(_STYLE):
        fig = _figure(7.5, 2.6)
        ax = fig.subplots()
        top = max([k for c in per_source.values() for k in c] + [0])
        x = np.arange(top + 1)
        width = 0.8 / max(len(per_source), 1)
        for i, (name, c) in enumerate(per_source.items()):
            total = sum(c.values()) or 1
            shares = [c.get(k, 0) / total for k in x]
            if len(per_source) <= 4:  # grouped bars while they stay readable, else one line per source
                ax.bar(x - 0.4 + width * (i + 0.5), shares, width=width * 0.92, color=colour(i), label=name)
            else:
                ax.plot(x, shares, color=colour(i), label=name, linewidth=1.2)
        ax.set_xticks(x if top <= 30 else np.linspace(0, top, 11).round())
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of rows")
        ax.set_title(title)
        if len(per_source) <= MANY:
            ax.legend()
        return _svg(fig)


def stacked_shares(variants: Sequence[str], sources: Sequence[str], realised: np.ndarray,
                   target: np.ndarray | None, title: str) -> str:
    """One 100% bar per variant, split by source; a tick marks each source's target boundary."""
    with matplotlib.rc_context(_STYLE):
        fig = _figure(7.5, _rows_height(len(variants), 0.45, 1.6))
        ax = fig.subplots()
        left = np.zeros(len(variants))
        for j, name in enumerate(sources):
            ax.barh(list(variants), realised[:, j], left=left, color=colour(j), label=name, height=0.6)
            for i, v in enumerate(realised[:, j]):
                if v > 0.06:
                    ax.text(left[i] + v / 2, i, f"{v:.1%}", ha="center", va="center", fontsize=7, color="white")
            left += realised[:, j]
        if target is not None:
            edges = np.cumsum(np.nan_to_num(target), axis=1)[:, :-1]
            for i, row in enumerate(edges):
                ax.scatter(row, [i] * len(row), marker="|", s=420, linewidths=1.5, color="black", zorder=3,
                           label="target boundary" if i == 0 else None)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_title(title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(len(sources) + 1, 5))
        return _svg(fig)
