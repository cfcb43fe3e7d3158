"""The report's hand-written SVG charts: well-formed, escaped, and drawn to the numbers given.

Each chart is parsed as XML and its marks are read back (bar widths, tick positions, the
``<title>`` each mark carries), so a chart that drew the wrong length, lost a bar or mislabelled
one fails here, not only in a screenshot.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from mixer.report import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("class") == "chart" and root.get("viewBox")
    assert not list(root.iter(f"{SVG}script"))
    return root


def marks(root: ET.Element, tag: str = "rect") -> dict[str, ET.Element]:
    """The chart's marks of one kind that carry a tooltip, by their tooltip text."""
    found = {}
    for el in root.iter(f"{SVG}{tag}"):
        tip = el.find(f"{SVG}title")
        if tip is not None:
            found[tip.text] = el
    return found


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def width(el: ET.Element) -> float:
    return float(el.get("width"))


def test_bars_are_as_long_as_their_values_and_labelled_with_them() -> None:
    root = parse(charts.bars(["a", "b", "c"], [30.0, 15.0, 0.0], "phases", "seconds", fmt="{:.1f} s"))
    bar = marks(root)
    assert set(bar) == {"a: 30.0 s", "b: 15.0 s", "c: 0.0 s"}
    assert width(bar["a: 30.0 s"]) == pytest.approx(2 * width(bar["b: 15.0 s"]), rel=1e-3)
    assert width(bar["c: 0.0 s"]) == 0
    assert {"30.0 s", "15.0 s", "0.0 s", "a", "b", "c", "phases", "seconds"} <= set(texts(root))


def test_bars_marks_sit_at_their_values_on_the_same_scale_as_the_bars() -> None:
    root = parse(charts.bars(["x", "y"], [0.5, 0.25], "touched vs p", marks=[0.5, None], mark_label="p (recipe)",
                             fmt="{:.1%}", percent=True))
    bar = marks(root)["x: 50.0%"]
    end = float(bar.get("x")) + width(bar)
    ticks = [line for line in root.iter(f"{SVG}line") if line.get("stroke-width") == "2.2"]
    assert len(ticks) == 2  # the mark on "x", and the legend's sample; "y" has none
    assert any(float(t.get("x1")) == pytest.approx(end, abs=0.01) for t in ticks)
    assert "p (recipe)" in texts(root)
    assert {"0%", "20%", "40%", "60%"} <= set(texts(root))


def test_names_with_markup_characters_are_escaped_text_not_markup() -> None:
    name = 'harm<less> & "co"'
    for svg in (charts.bars([name], [1.0], name),
                charts.shares([name], {"target": [1.0]}, "s"),
                charts.flow([name], {"train selected": [5]}, "f"),
                charts.counts({name: {0: 1, 1: 2}}, "c", "tools"),
                charts.lengths({name: np.array([1, 5, 50])}, "l", "tokens"),
                charts.stacked_shares(["v"], [name], np.array([[1.0]]), None, "sw")):
        root = parse(svg)
        assert any(name in t for t in texts(root)), svg


def test_shares_draws_no_bar_for_a_missing_value_and_scales_the_rest() -> None:
    root = parse(charts.shares(["a", "b"], {"target": [0.5, None], "realised": [0.5, 0.25]}, "shares"))
    bar = marks(root)
    assert set(bar) == {"a: target 50.00%", "a: realised 50.00%", "b: realised 25.00%"}
    assert width(bar["a: realised 50.00%"]) == pytest.approx(2 * width(bar["b: realised 25.00%"]), rel=1e-3)


def test_flow_segments_fill_each_row_and_leave_out_empty_buckets() -> None:
    buckets = {"rejected": [10, 0], "deduplicated": [0, 0], "train selected": [30, 7]}
    root = parse(charts.flow(["a", "b"], buckets, "where rows went"))
    seg = marks(root)
    assert set(seg) == {"a: rejected 10 (25.0%)", "a: train selected 30 (75.0%)", "b: train selected 7 (100.0%)"}
    a = width(seg["a: rejected 10 (25.0%)"]) + width(seg["a: train selected 30 (75.0%)"])
    assert a == pytest.approx(width(seg["b: train selected 7 (100.0%)"]), abs=0.02)
    assert "deduplicated" not in texts(root) and "rejected" in texts(root)


def test_stacked_shares_marks_each_target_boundary() -> None:
    realised = np.array([[0.5, 0.5], [0.25, 0.75]])
    root = parse(charts.stacked_shares(["w1", "w2"], ["a", "b"], realised, np.array([[0.5, 0.5], [0.5, 0.5]]), "s"))
    seg = marks(root)
    half = width(seg["w1: a 50.0% (50.0%)"])
    start = float(seg["w1: a 50.0% (50.0%)"].get("x"))
    boundaries = sorted(float(line.get("x1")) for line in root.iter(f"{SVG}line") if line.get("stroke-width") == "2")
    assert boundaries[:2] == pytest.approx([start + half, start + half], abs=0.01)  # both targets at 50%
    assert width(seg["w2: a 25.0% (25.0%)"]) == pytest.approx(half / 2, rel=1e-3)
    assert "target boundary" in texts(root)


def test_histogram_counts_every_value_once_as_a_share() -> None:
    values = np.array([0, 1, 3, 10, 99, 1000, 5000])
    lo, hi, bins = charts._log_bins([values])
    share = charts.histogram(values, bins, lo, hi)
    assert share.sum() == pytest.approx(1.0)
    assert len(share) == len(bins) - 1


def test_length_panels_draw_one_line_per_source_per_panel_with_the_median() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(1, 500, 101), rng.integers(10, 5000, 51)
    root = parse(charts.length_panels({"whole": {"a": a, "b": b}, "turns": {"a": a // 2}}, "tokens (log)"))
    lines = marks(root, "polyline")
    assert set(lines) == {f"a: whole (median {int(np.median(a)):,})", f"b: whole (median {int(np.median(b)):,})",
                          f"a: turns (median {int(np.median(a // 2)):,})"}
    shown = texts(root)
    assert f"a (median {int(np.median(a)):,})" in shown and "whole" in shown and "turns" in shown
    # every line starts and ends on the panel's baseline, and stays inside the drawing
    view = [float(v) for v in root.get("viewBox").split()]
    for line in lines.values():
        points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
        assert points[0][1] == points[-1][1]
        assert all(0 <= x <= view[2] and 0 <= y <= view[3] for x, y in points)


def test_log_ticks_are_one_two_five_within_the_range() -> None:
    assert charts.log_ticks(3, 600) == [5, 10, 20, 50, 100, 200, 500]
    assert charts.log_ticks(1, 10_000_000) == [1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000]


def test_nice_ticks_step_evenly_from_zero_to_the_top() -> None:
    assert charts.nice_ticks(1.0) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert charts.nice_ticks(0.96) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    assert charts.nice_ticks(14_000) == [0, 2500, 5000, 7500, 10_000, 12_500]
    assert charts.percent_labels([0, 0.025, 0.05]) == ["0.0%", "2.5%", "5.0%"]
    assert charts.percent_labels([0, 0.2]) == ["0%", "20%"]


def test_counts_bars_are_as_tall_as_each_sources_share() -> None:
    root = parse(charts.counts({"a": {0: 3, 1: 1}, "b": {0: 1, 2: 1}}, "tools per row", "tools on the row"))
    bar = marks(root)
    tall = {k: float(v.get("height")) for k, v in bar.items()}
    assert tall["a: 0 tools on the row: 75.0%"] == pytest.approx(3 * tall["a: 1 tools on the row: 25.0%"], rel=1e-3)
    assert tall["b: 2 tools on the row: 50.0%"] == pytest.approx(2 * tall["a: 1 tools on the row: 25.0%"], rel=1e-3)
    assert tall["b: 1 tools on the row: 0.0%"] == 0


def test_many_sources_drop_labels_and_long_names_are_cut_to_fit() -> None:
    names = [f"source_{i}_" + "x" * 80 for i in range(charts.MANY + 2)]
    root = parse(charts.shares(names, {"realised": [1 / len(names)] * len(names)}, "many"))
    assert not any(t.startswith("8.3%") for t in texts(root))  # no value labels past MANY sources
    assert all(len(t) < 60 for t in texts(root))
    assert any(t.endswith("…") for t in texts(root))


def test_the_same_numbers_give_the_same_bytes() -> None:
    def draw() -> str:
        return charts.length_panels({"w": {"a": np.arange(1, 300)}}, "tokens") + charts.bars(["a"], [1.0], "t")
    assert draw() == draw()


def test_writing_a_report_does_not_load_a_plotting_library() -> None:
    code = ("import sys, numpy as np; from mixer.report import charts, write_report; "
            "charts.length_panels({'w': {'a': np.arange(1, 9)}}, 't'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'plotly')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_narrow_log_range_still_gets_several_ticks() -> None:
    assert charts.log_ticks(150, 900) == [200, 300, 400, 500, 600, 700, 800, 900]


def test_legend_labels_of_the_shares_chart_are_shown_whole() -> None:
    series = {"target": [0.5], "realised (tokens)": [0.5], "share of rows": [0.6],
              "realised (tokens), as written": [0.62]}
    shown = texts(parse(charts.shares(["harmless"], series, "shares")))
    assert all(label in shown for label in series)
