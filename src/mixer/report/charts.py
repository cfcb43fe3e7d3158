"""Charts as inline SVG, written by hand.

The report needs six kinds of chart: horizontal bars (plain, grouped, 100% stacked), grouped
vertical bars, and step histograms on a log axis. Each is a few dozen rectangles, lines and
labels, so this module writes the markup itself instead of loading a plotting library:
matplotlib took 0.75 s to import and 0.18 s per chart to lay out and save, about a third of a
100k-row build. The page needs no script (the report makes no fetches and runs no code), text
stays text in the reader's own sans-serif font, and every bar carries a ``<title>`` with its
exact value, which a browser shows on hover. The same numbers give the same bytes.

Every function takes plain numbers and returns one ``<svg class="chart">`` string. Coordinates
are in a fixed ``viewBox``; the page's CSS scales a chart to its column (up to 1.2x).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np

MANY = 10  # above this many sources a chart drops per-item labels and legends (the tables have them)
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac"]
BUCKET_COLOURS = {
    "rejected": "#e15759", "deduplicated": "#f28e2b", "decontaminated": "#b07aa1", "filtered": "#9c755f",
    "validation written": "#76b7b2", "validation export-rejected": "#ff9da7", "validation not written": "#bab0ac",
    "train not selected": "#d4d4d4",
    "train selected": "#4e79a7",
}
_SERIES = ["#bab0ac", "#4e79a7", "#59a14f", "#f28e2b", "#76b7b2"]  # target first, in grey

WIDTH = 720  # viewBox width of a one-panel chart
_FONT = 11  # tick labels and legends
_SMALL = 9  # value labels on bars
_TITLE = 13
_INK, _MUTED, _GRID = "#222", "#555", "#e3e3e3"


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def text_width(s: str, size: float = _FONT) -> float:
    """An estimate of ``s``'s width in a sans-serif font (no font is measured: the reader's own
    is used). Generous, so labels are not cut: 0.6 em a character."""
    return len(s) * size * 0.6


# -- markup ------------------------------------------------------------------------------------------

def _n(v: float) -> str:
    """A coordinate: two decimals at most (finer is invisible at any zoom a page allows)."""
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def _text(x: float, y: float, s: str, *, size: float = _FONT, anchor: str = "start", fill: str = _INK,
          weight: str = "", rotate: bool = False) -> str:
    extra = f' font-weight="{weight}"' if weight else ""
    extra += f' transform="rotate(-90 {_n(x)} {_n(y)})"' if rotate else ""
    anchor_attr = "" if anchor == "start" else f' text-anchor="{anchor}"'
    return (f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(size)}" fill="{fill}"{anchor_attr}'
            f' dominant-baseline="central"{extra}>{escape(s)}</text>')


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str = "") -> str:
    inner = f"<title>{escape(tip)}</title>" if tip else ""
    return (f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(max(w, 0.0))}" height="{_n(h)}" fill="{fill}"'
            + (f">{inner}</rect>" if inner else "/>"))


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str = _INK, width: float = 1.0) -> str:
    return (f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}"'
            f' stroke-width="{_n(width)}"/>')


def _clipped(label: str, room: float, size: float = _FONT) -> str:
    """``label``, cut with an ellipsis to fit ``room`` pixels (the full text is in the tables)."""
    if text_width(label, size) <= room + 0.5:
        return label
    keep = max(1, int(room / (size * 0.6)) - 1)
    return label[:keep] + "…"


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {_n(width)} {_n(height)}"'
            f' style="max-width:{_n(width * 1.2)}px" role="img" font-family="sans-serif">'
            f"<title>{escape(title)}</title>{''.join(body)}</svg>")


# -- scales and ticks ------------------------------------------------------------------------------

def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Ticks 0, s, 2s, ... up to ``top``, about ``count`` of them after 0, with a step s of 1, 2,
    2.5 or 5 times a power of ten."""
    if not top > 0 or not math.isfinite(top):
        top = 1.0
    k = math.floor(math.log10(top / count))
    steps = [m * 10.0 ** e for e in (k - 1, k, k + 1) for m in (1, 2, 2.5, 5)]
    step = min(steps, key=lambda s: (abs(int(top / s + 1e-9) - count), -s))
    return [round(i * step, 12) for i in range(int(top / step + 1e-9) + 1)]


def percent_labels(ticks: Sequence[float]) -> list[str]:
    """``40%`` when every tick is a whole percent, else one decimal (``2.5%``)."""
    whole = all(abs(t * 100 - round(t * 100)) < 1e-6 for t in ticks)
    return [f"{t:.0%}" if whole else f"{t:.1%}" for t in ticks]


def log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2 and 5 times each power of ten within [lo, hi]: only the powers when that is many,
    every multiple (200, 300, ...) when it is fewer than three."""
    powers = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)

    def within(steps: Sequence[int]) -> list[float]:
        return [s * 10.0 ** k for k in powers for s in steps if lo <= s * 10.0 ** k <= hi]

    ticks = within((1, 2, 5))
    if len(ticks) < 3:
        return within(range(1, 10))
    return ticks if len(ticks) <= 10 else [t for t in ticks if math.log10(t) == round(math.log10(t))]


@dataclass
class _Legend:
    """Legend entries (label, colour, mark: ``box``, ``line`` or ``tick``) and their markup."""

    items: list[tuple[str, str, str]] = field(default_factory=list)

    def _mark(self, x: float, y: float, fill: str, mark: str) -> str:
        if mark == "line":
            return _line(x, y, x + 14, y, fill, 2)
        if mark == "tick":
            return _line(x + 7, y - 7, x + 7, y + 7, fill, 2.2)
        return _rect(x, y - 5, 14, 10, fill)

    def width(self) -> float:
        """The room a column of these entries takes: the longest label's, up to a third of a chart."""
        return min(max((text_width(label) for label, _, _ in self.items), default=0) + 22, WIDTH / 3)

    def column(self, x: float, y: float, room: float | None = None, backdrop: bool = False) -> list[str]:
        """One entry under the other, from (x, y); labels cut to ``room`` pixels with the mark."""
        room = self.width() if room is None else room
        out = []
        if backdrop and self.items:  # over a plot: keep the lines behind it from crossing the labels
            wide = min(room, max(text_width(_clipped(label, room - 22)) for label, _, _ in self.items) + 26)
            out.append(f'<rect x="{_n(x - 4)}" y="{_n(y - 9)}" width="{_n(wide)}" height="{16 * len(self.items) + 2}"'
                       ' fill="white" fill-opacity="0.85"/>')
        for i, (label, fill, mark) in enumerate(self.items):
            out += [self._mark(x, y + i * 16, fill, mark), _text(x + 20, y + i * 16, _clipped(label, room - 22))]
        return out

    def rows(self, x: float, y: float, room: float) -> tuple[list[str], float]:
        """Entries side by side from (x, y), wrapped at ``room`` pixels; the markup and its height."""
        out, cx, cy = [], x, y
        for label, fill, mark in self.items:
            label = _clipped(label, room - 22)
            w = text_width(label) + 34
            if cx > x and cx + w > x + room:
                cx, cy = x, cy + 16
            out += [self._mark(cx, cy, fill, mark), _text(cx + 20, cy, label)]
            cx += w
        return out, (cy - y + 16 if self.items else 0)


# -- horizontal bars ---------------------------------------------------------------------------------

@dataclass
class _Rows:
    """A horizontal-bar chart's frame: a title, one band per label down the left, a value axis
    along the bottom from 0 to ``top``; ``right`` pixels kept for a legend or value labels."""

    title: str
    labels: Sequence[str]
    top: float
    band: float = 26.0
    right: float = 60.0
    percent: bool = False
    xlabel: str = ""
    ticks: list[float] | None = None
    width: float = WIDTH

    def __post_init__(self) -> None:
        widest = max((text_width(str(s)) for s in self.labels), default=0)
        self.left = min(max(widest + 14, 40.0), self.width * 0.34)
        self.y0 = 30.0
        self.plot = self.width - self.left - self.right
        self.bottom = self.y0 + self.band * max(len(self.labels), 1)

    def x(self, v: float) -> float:
        return self.left + self.plot * (min(max(v, 0.0), self.top) / (self.top or 1))

    def y(self, i: int) -> float:
        """The top of label i's band."""
        return self.y0 + self.band * i

    def draw(self, body: list[str], below: list[str] | None = None, below_height: float = 0.0) -> str:
        ticks = self.ticks if self.ticks is not None else nice_ticks(self.top)
        names = percent_labels(ticks) if self.percent else [f"{t:,.10g}" for t in ticks]
        axis = [_line(self.x(t), self.y0, self.x(t), self.bottom, _GRID) for t in ticks[1:]]
        for t, name in zip(ticks, names):
            axis += [_line(self.x(t), self.bottom, self.x(t), self.bottom + 4, _MUTED),
                     _text(self.x(t), self.bottom + 13, name, anchor="middle", fill=_MUTED)]
        axis.append(_line(self.left, self.y0, self.left, self.bottom, _INK))
        axis.append(_line(self.left, self.bottom, self.left + self.plot, self.bottom, _INK))
        for i, label in enumerate(self.labels):
            axis.append(_text(self.left - 6, self.y(i) + self.band / 2, _clipped(str(label), self.left - 10),
                              anchor="end"))
        height = self.bottom + 22
        if self.xlabel:
            axis.append(_text(self.left + self.plot / 2, height + 4, self.xlabel, anchor="middle", fill=_MUTED))
            height += 18
        moved = [f'<g transform="translate(0 {_n(height + 6)})">{"".join(below)}</g>'] if below else []
        height += below_height + (10 if below else 0)
        head = [_text(self.left, 14, self.title, size=_TITLE, weight="bold")]
        return _svg(self.width, height + 4, self.title, head + axis + body + moved)


def shares(names: Sequence[str], series: dict[str, Sequence[float | None]], title: str) -> str:
    """Grouped horizontal bars: one group per source, one bar per series (target, realised, ...)."""
    legend = _Legend([(label, _SERIES[k % len(_SERIES)], "box") for k, label in enumerate(series)])
    k = max(len(series), 1)
    room = text_width("100.0%", _SMALL) + 8 if len(names) <= MANY else 0  # value labels past a full bar
    frame = _Rows(title, names, max(0.05, min(1.0, _max(series) * 1.18)), band=max(14.0 * k + 8, 22.0),
                  right=room + legend.width() + 16, percent=True)
    body, h = [], (frame.band - 6) / k
    for j, (label, values) in enumerate(series.items()):
        for i, v in enumerate(values):
            if v is None or not math.isfinite(v):
                continue
            y = frame.y(i) + 3 + h * j
            body.append(_rect(frame.left, y + 0.5, frame.x(v) - frame.left, h - 1, _SERIES[j % len(_SERIES)],
                              f"{names[i]}: {label} {v:.2%}"))
            if len(names) <= MANY:
                body.append(_text(frame.x(v) + 3, y + h / 2, f"{v:.1%}", size=_SMALL))
    body += legend.column(frame.left + frame.plot + room + 16, frame.y0 + 6)
    return frame.draw(body)


def _max(series: dict[str, Sequence[float | None]]) -> float:
    return max([v for values in series.values() for v in values if v is not None and math.isfinite(v)] or [0.0])


def _stacked(frame: _Rows, parts: list[tuple[str, str, Sequence[float], Sequence[str], str]]) -> list[str]:
    """100% stacked bars: per part (label, colour, shares per row, text per row, text colour),
    laid left to right; a part's text is written where its segment is wide enough."""
    body: list[str] = []
    left = np.zeros(len(frame.labels))
    for label, fill, fractions, texts, ink in parts:
        for i, (f, s) in enumerate(zip(fractions, texts)):
            if f <= 0:
                continue
            x0, x1 = frame.x(left[i]), frame.x(left[i] + f)
            body.append(_rect(x0, frame.y(i) + 4, x1 - x0, frame.band - 8, fill,
                              f"{frame.labels[i]}: {label} {s} ({f:.1%})"))
            if s and len(frame.labels) <= MANY and x1 - x0 > text_width(s, _SMALL) + 4:
                body.append(_text((x0 + x1) / 2, frame.y(i) + frame.band / 2, s, size=_SMALL, anchor="middle",
                                  fill=ink))
            left[i] += f
    return body


def flow(names: Sequence[str], buckets: dict[str, Sequence[int]], title: str) -> str:
    """One 100% stacked bar per source: where each row read went."""
    totals = np.array([sum(values[i] for values in buckets.values()) for i in range(len(names))], dtype=float)
    totals[totals == 0] = 1
    frame = _Rows(title, names, 1.0, band=34.0, right=20.0, percent=True, xlabel="share of rows read")
    used = [(label, values) for label, values in buckets.items() if any(values)]
    parts = [(label, BUCKET_COLOURS.get(label, "#999"), list(np.asarray(values, dtype=float) / totals),
              [f"{v:,}" for v in values], "white" if label in ("train selected", "rejected") else _INK)
             for label, values in used]
    legend, height = _Legend([(label, BUCKET_COLOURS.get(label, "#999"), "box") for label, _ in used]).rows(
        frame.left, 0, frame.plot)
    return frame.draw(_stacked(frame, parts), legend, height)


def stacked_shares(variants: Sequence[str], sources: Sequence[str], realised: np.ndarray,
                   target: np.ndarray | None, title: str) -> str:
    """One 100% bar per variant, split by source; a tick marks each source's target boundary."""
    frame = _Rows(title, variants, 1.0, band=34.0, right=20.0, percent=True)
    parts = [(name, colour(j), list(realised[:, j]), [f"{v:.1%}" for v in realised[:, j]], "white")
             for j, name in enumerate(sources)]
    body = _stacked(frame, parts)
    items = [(name, colour(j), "box") for j, name in enumerate(sources)]
    if target is not None:
        edges = np.cumsum(np.nan_to_num(target), axis=1)[:, :-1]
        for i, row in enumerate(edges):
            for e in row:
                body.append(_line(frame.x(e), frame.y(i) + 1, frame.x(e), frame.y(i) + frame.band - 1, _INK, 2))
        items.append(("target boundary", _INK, "tick"))
    legend, height = _Legend(items).rows(frame.left, 0, frame.plot)
    return frame.draw(body, legend, height)


def bars(labels: Sequence[str], values: Sequence[float], title: str, xlabel: str = "",
         marks: Sequence[float | None] | None = None, mark_label: str = "", fmt: str = "{:,.0f}",
         percent: bool = False) -> str:
    """Horizontal bars with value labels; ``marks`` draws a tick per bar (e.g. the cap or the p)."""
    shown = [fmt.format(v) for v in values]
    pts = [(m, i) for i, m in enumerate(marks or []) if m is not None]
    legend = _Legend([(mark_label, _INK, "tick")] if pts else [])
    top = max(list(values) + [m for m, _ in pts] + [0]) or 1
    room = max((text_width(s, _SMALL) for s in shown), default=0) + 8
    frame = _Rows(title, labels, top * 1.2, band=22.0, right=legend.width() + 16 if pts else room,
                  percent=percent, xlabel=xlabel)
    body = []
    for i, (v, s) in enumerate(zip(values, shown)):
        body.append(_rect(frame.left, frame.y(i) + 4, frame.x(v) - frame.left, frame.band - 8, colour(i),
                          f"{labels[i]}: {s}"))
        body.append(_text(frame.x(v) + 3, frame.y(i) + frame.band / 2, s, size=_SMALL))
    for m, i in pts:
        body.append(_line(frame.x(m), frame.y(i) + 1, frame.x(m), frame.y(i) + frame.band - 1, _INK, 2.2))
    if pts:
        body += legend.column(frame.left + frame.plot + 16, frame.y0 + 6)
    return frame.draw(body)


# -- vertical panels ---------------------------------------------------------------------------------

@dataclass
class _Panel:
    """A plot area at (x0, y0) of size w x h with a value axis 0..top (shares) up the left and a
    position axis along the bottom, linear or log."""

    x0: float
    y0: float
    w: float
    h: float
    lo: float
    hi: float
    top: float
    log: bool = False

    def x(self, v: float) -> float:
        if self.log:
            a, b, v = math.log(self.lo), math.log(self.hi), math.log(max(v, self.lo))
        else:
            a, b = self.lo, self.hi
        return self.x0 + self.w * (v - a) / ((b - a) or 1)

    def y(self, v: float) -> float:
        return self.y0 + self.h * (1 - min(max(v, 0.0), self.top) / (self.top or 1))

    def axes(self, xticks: Sequence[float], xnames: Sequence[str], title: str, xlabel: str,
             ylabel: str = "") -> list[str]:
        bottom = self.y0 + self.h
        yt = nice_ticks(self.top, 4)
        out = [_text(self.x0, self.y0 - 16, title, size=12, weight="bold")]
        for t, name in zip(yt, percent_labels(yt)):
            out += [_line(self.x0, self.y(t), self.x0 + self.w, self.y(t), _GRID) if t else "",
                    _text(self.x0 - 6, self.y(t), name, anchor="end", fill=_MUTED)]
        last = -math.inf
        for t, name in zip(xticks, xnames):  # labels that would touch the one before are left out
            x = self.x(t)
            out.append(_line(x, bottom, x, bottom + 4, _MUTED))
            if x - text_width(name) / 2 > last + 4:
                out.append(_text(x, bottom + 13, name, anchor="middle", fill=_MUTED))
                last = x + text_width(name) / 2
        out += [_line(self.x0, self.y0, self.x0, bottom), _line(self.x0, bottom, self.x0 + self.w, bottom),
                _text(self.x0 + self.w / 2, bottom + 31, xlabel, anchor="middle", fill=_MUTED)]
        if ylabel:
            out.append(_text(self.x0 - 42, self.y0 + self.h / 2, ylabel, anchor="middle", fill=_MUTED, rotate=True))
        return out


def _log_bins(arrays: list[np.ndarray]) -> tuple[int, int, np.ndarray]:
    values = [v for v in arrays if len(v)]
    lo = max(1, int(min(v.min() for v in values))) if values else 1
    hi = max(lo + 1, int(max(v.max() for v in values))) if values else 2
    return lo, hi, np.unique(np.geomspace(lo, hi + 1, 40).round())


def histogram(values: np.ndarray, bins: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Each bin's share of ``values`` (clipped into [lo, hi], so every value is counted once)."""
    counts, _ = np.histogram(np.clip(values, lo, hi), bins=bins)
    return counts / max(len(values), 1)


def lengths(per_source: dict[str, np.ndarray], title: str, xlabel: str) -> str:
    """Step histograms on log-spaced bins, one per source, as a share of the source's rows."""
    return length_panels({title: per_source}, xlabel)


def length_panels(panels: dict[str, dict[str, np.ndarray]], xlabel: str) -> str:
    """One log-binned step-histogram panel per measure (whole row, turns, assistant), a line
    per source in the same colour across panels; each panel's legend gives the medians."""
    names = list(dict.fromkeys(n for p in panels.values() for n in p))
    colours = {n: colour(i) for i, n in enumerate(names)}
    width = WIDTH if len(panels) == 1 else 1056
    gap, left = 56.0, 58.0
    each = (width - left - gap * (len(panels) - 1) - 10) / max(len(panels), 1)
    # room above the highest bin for the legends (a line per source), so no line crosses one
    legend = max((sum(1 for v in p.values() if len(v)) for p in panels.values() if len(p) <= MANY), default=0)
    headroom = 16.0 * legend + 10 if legend else 10.0
    height = 160.0 + headroom
    body: list[str] = []
    for k, (title, per_source) in enumerate(panels.items()):
        lo, hi, bins = _log_bins(list(per_source.values()))
        shares = {n: histogram(v, bins, lo, hi) for n, v in per_source.items() if len(v)}
        top = max([float(s.max()) for s in shares.values()] + [0.0]) * height / 160.0 or 1.0
        panel = _Panel(left + k * (each + gap), 40.0, each, height, float(bins[0]), float(bins[-1]), top, log=True)
        ticks = log_ticks(panel.lo, panel.hi)
        body += panel.axes(ticks, [f"{t:,.0f}" for t in ticks], title, xlabel,
                           "share of the source's rows" if k == 0 else "")
        entries = []
        for n, share in shares.items():
            points = [(panel.x(float(bins[0])), panel.y(0))]
            for a, b, s in zip(bins[:-1], bins[1:], share):
                points += [(panel.x(float(a)), panel.y(s)), (panel.x(float(b)), panel.y(s))]
            points.append((panel.x(float(bins[-1])), panel.y(0)))
            path = " ".join(f"{_n(px)},{_n(py)}" for px, py in points)
            median = int(np.median(per_source[n]))
            body.append(f'<polyline points="{path}" fill="none" stroke="{colours[n]}" stroke-width="1.6">'
                        f"<title>{escape(n)}: {title} (median {median:,})</title></polyline>")
            entries.append((f"{_clipped(n, 150)} (median {median:,})", colours[n], "line"))
        if len(per_source) <= MANY:
            body += _Legend(entries).column(panel.x0 + 8, panel.y0 + 8, panel.w - 8, backdrop=True)
    return _svg(width, 40 + height + 42, " / ".join(panels), body)


def counts(per_source: dict[str, dict[int, int]], title: str, xlabel: str) -> str:
    """Grouped vertical bars of a small integer (tools per row), as a share of each source's rows."""
    top = max([k for c in per_source.values() for k in c] + [0])
    shares = {name: [c.get(k, 0) / (sum(c.values()) or 1) for k in range(top + 1)] for name, c in per_source.items()}
    highest = max([s for v in shares.values() for s in v] + [0.0]) * 1.08 or 1.0
    legend = _Legend([(name, colour(i), "box" if len(per_source) <= 4 else "line")
                      for i, name in enumerate(per_source)] if len(per_source) <= MANY else [])
    panel = _Panel(64.0, 40.0, WIDTH - 64 - legend.width() - 24, 170.0, -0.6, top + 0.6, highest)
    xs = list(range(top + 1)) if top <= 30 else [int(t) for t in nice_ticks(top, 10)]
    body = panel.axes(xs, [str(x) for x in xs], title, xlabel, "share of rows")
    width = 0.8 / max(len(per_source), 1)
    for i, (name, share) in enumerate(shares.items()):
        if len(per_source) <= 4:  # grouped bars while they stay readable, else one line per source
            for k, s in enumerate(share):
                x0 = panel.x(k - 0.4 + width * i + width * 0.04)
                x1 = panel.x(k - 0.4 + width * (i + 1) - width * 0.04)
                body.append(_rect(x0, panel.y(s), x1 - x0, panel.y(0) - panel.y(s), colour(i),
                                  f"{name}: {k} {xlabel}: {s:.1%}"))
        else:
            path = " ".join(f"{_n(panel.x(k))},{_n(panel.y(s))}" for k, s in enumerate(share))
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour(i)}" stroke-width="1.2">'
                        f"<title>{escape(name)}</title></polyline>")
    body += legend.column(panel.x0 + panel.w + 16, panel.y0 + 6)
    return _svg(WIDTH, 40 + 170 + 42, title, body)

