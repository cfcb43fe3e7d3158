"""Rows the output format cannot carry are never invisible: the build table shows what was
written and each source's share as written, with a warning per reason."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from conftest import chat, chats, write_jsonl, write_recipe
from mixer.cli import main

DOTTED = {"type": "function", "function": {"name": "math.sum", "description": "Add numbers.",
                                           "parameters": {"type": "object", "properties": {}}}}


def recipe(tmp_path: Path) -> Path:
    rows = [chat(f"tool question {i}", f"answer {i}", **({"tools": [DOTTED]} if i % 3 == 0 else {})) for i in range(30)]
    write_jsonl(tmp_path / "a.jsonl", rows)
    write_jsonl(tmp_path / "b.jsonl", chats(30, "b"))
    return write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 40
output = { format = "openai" }
[sources.a]
path = "a.jsonl"
weight = 0.5
[sources.b]
path = "b.jsonl"
weight = 0.5
""")


def test_build_table_shows_rows_written_and_shares_after_export_with_a_warning_per_reason(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["build", str(recipe(tmp_path)), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    a = manifest["export"]["sources"]["a"]
    rejected = sum(a["rejected"]["train"].values())
    assert rejected > 0 and a["rows_written"]["train"] == manifest["sources"]["a"]["rows_selected"] - rejected
    written = sum(1 for _ in (tmp_path / "out" / "data" / "train-00000-of-00001.jsonl").open())
    assert written == manifest["export"]["rows"]["train"] == 40 - rejected
    assert abs(a["realized_share_written"] - (20 - rejected) / (40 - rejected)) < 1e-9
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("source"))
    assert header.split()[-3:] == ["written", "as", "written"]
    row_a = next(line for line in lines if line.startswith("a "))
    assert row_a.split()[-2:] == [str(20 - rejected), f"{a['realized_share_written']:.1%}"]
    warning = next(line for line in lines if line.startswith(f"warning: {rejected} train rows not written as openai"))
    assert "rename_tools = true" in warning and f"a: {rejected}" in warning and "rejects.jsonl" in warning
    details = [json.loads(line).get("detail") for line in (tmp_path / "out" / "rejects.jsonl").open()]
    assert details == ["tool name 'math.sum'"] * rejected  # which name, per row
    assert any(line.startswith("warning: source 'a' is") and "as written" in line for line in lines)
    assert len((tmp_path / "out" / "rejects.jsonl").read_text().splitlines()) == rejected


def test_streaming_build_shows_the_same_table(tmp_path: Path) -> None:
    r = recipe(tmp_path)
    memory = CliRunner().invoke(main, ["build", str(r), "--out", str(tmp_path / "m"), "-q"])
    stream = CliRunner().invoke(main, ["build", str(r), "--out", str(tmp_path / "s"), "-q", "--stream"])
    assert memory.exit_code == stream.exit_code == 0
    assert memory.output.replace(str(tmp_path / "m"), "OUT") == stream.output.replace(str(tmp_path / "s"), "OUT")


def test_convert_of_a_build_output_converts_every_split(tmp_path: Path) -> None:
    import datasets

    write_jsonl(tmp_path / "a.jsonl", chats(200, "a"))
    r = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 100\nvalidation = 0.2\n'
                                          '[sources.a]\npath = "a.jsonl"\nweight = 1\n')
    assert CliRunner().invoke(main, ["build", str(r), "--out", str(tmp_path / "built"), "-q"]).exit_code == 0
    built = json.loads((tmp_path / "built" / "manifest.json").read_text())["totals"]
    assert built["validation"]["rows"] > 0
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "built"), str(tmp_path / "new"), "--to", "openai"])
    assert result.exit_code == 0, result.output
    assert f"validation: canonical -> openai: {built['validation']['rows']} read" in result.output
    loaded = datasets.load_dataset(str(tmp_path / "new"))
    assert {k: v.num_rows for k, v in loaded.items()} == {"train": built["train"]["rows"],
                                                          "validation": built["validation"]["rows"]}


def test_convert_of_a_saved_datasetdict_converts_every_split(tmp_path: Path) -> None:
    import datasets

    rows = chats(12)
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:8]),
                          "test": datasets.Dataset.from_list(rows[8:])}).save_to_disk(str(tmp_path / "dd"))
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "dd"), str(tmp_path / "out"), "--to", "trl"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["splits"] == {"train": {"rows_read": 8, "rows_rejected": 0},
                                  "test": {"rows_read": 4, "rows_rejected": 0}}
    assert manifest["export"]["rows"] == {"train": 8, "test": 4}
