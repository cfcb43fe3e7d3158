"""mixer pools import: real BFCL docs and the other common tool formats become checked catalogs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from conftest import TOOL_SPECS, chats, needs_shared, write_jsonl
from mixer import transforms
from mixer.cli import main
from mixer.pools.importers import import_specs
from mixer.sources.read import read_source
from mixer.recipe import Source


@needs_shared
def test_bfcl_function_docs_get_json_schema_types_as_the_published_conversion_has_them() -> None:
    rows = [json.loads(line) for line in gzip.open(TOOL_SPECS / "bfcl_tools.jsonl.gz", "rt")]
    result = import_specs(TOOL_SPECS / "bfcl_tools.jsonl.gz", "bfcl")  # reads each row's BFCL original
    assert result.read == len(rows) == 3526
    ours = {json.dumps(s["function"], sort_keys=True) for s in result.specs}
    theirs = [json.dumps(r["function"], sort_keys=True) for r in rows]
    same = sum(t in ours for t in theirs)
    assert same / len(theirs) > 0.98  # dict -> object, float -> number, ... as the dataset's converted copy
    assert sum(result.skipped.values()) == result.read - len(result.specs) and result.skipped
    assert all(s["function"]["parameters"]["type"] == "object" for s in result.specs)


def test_every_format_imports_and_bad_specs_are_counted_by_reason(tmp_path: Path) -> None:
    weather = {"name": "get_weather", "description": "Weather for a city.",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    files = {
        "openai": [{"type": "function", "function": weather}, {"type": "function", "function": {"description": "x"}}],
        "anthropic": [{"name": "get_weather", "description": "Weather.",
                       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "bfcl": [{"id": "simple_0", "question": [], "function": [
            {"name": "calc.area", "description": "Area.", "parameters": {
                "type": "dict", "properties": {"base": {"type": "float"}, "height": {"type": "integer"}},
                "required": ["base", "height"]}},
            {"name": "broken", "parameters": {"type": "dict", "properties": {}, "required": ["ghost"]}}]}],
        "xlam": [{"query": "q", "answers": "[]", "tools": json.dumps([
            {"name": "search_books", "description": "Find books.",
             "parameters": {"title": {"type": "str", "description": "Title."},
                            "limit": {"type": "int, optional", "description": "How many.", "default": 5}}}])}],
        "toolace": [{"system": "You are an expert in composing functions. Here is a list of functions in JSON "
                               "format that you can invoke:\n" + json.dumps([weather]) + "\nShould you decide...",
                     "conversations": []}],
        "glaive": [{"system": "SYSTEM: You are a helpful assistant with access to the following functions. Use them "
                              "if required -\n" + json.dumps(weather, indent=4) + "\n\n" + json.dumps(
                                  {**weather, "name": "get_time"}, indent=4), "chat": "USER: hi"}],
    }
    got = {}
    for fmt, records in files.items():
        result = import_specs(write_jsonl(tmp_path / f"{fmt}.jsonl", records), fmt)
        got[fmt] = (sorted(s["function"]["name"] for s in result.specs), dict(result.skipped))
    assert got["openai"] == (["get_weather"], {"no function name": 1})
    assert got["anthropic"] == (["get_weather"], {})
    assert got["bfcl"] == (["calc.area"], {"required names a parameter that does not exist": 1})
    assert got["xlam"] == (["search_books"], {})
    assert got["toolace"] == (["get_weather"], {})
    assert got["glaive"] == (["get_time", "get_weather"], {})
    area = import_specs(tmp_path / "bfcl.jsonl", "bfcl").specs[0]["function"]["parameters"]
    assert area["properties"] == {"base": {"type": "number"}, "height": {"type": "integer"}}
    books = import_specs(tmp_path / "xlam.jsonl", "xlam").specs[0]["function"]["parameters"]
    assert books["required"] == ["title"] and books["properties"]["limit"]["type"] == "integer"


def test_imported_catalog_feeds_the_tools_transform(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "tools.jsonl", [{"type": "function", "function": {
        "name": f"lookup_{i}", "description": f"Look up record kind {i}.",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}}}} for i in range(8)])
    out = tmp_path / "catalog.jsonl"
    result = CliRunner().invoke(main, ["pools", "import", str(source), "--from", "openai", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "8 specs found, 8 written" in result.output
    again = CliRunner().invoke(main, ["pools", "import", str(source), "--from", "openai", "-o", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output
    frame, _ = read_source(Source(name="s", path=str(write_jsonl(tmp_path / "c.jsonl", chats(20)))))
    augmented = transforms.tools(frame, catalog=str(out), p=1.0, count=(1, 2), seed=3)
    names = augmented.select(pl.col("tools").list.eval(pl.element().str.json_path_match("$.function.name")))
    assert {n for row in names.to_series().to_list() for n in row} <= {f"lookup_{i}" for i in range(8)}


def test_a_file_with_no_usable_specs_fails_with_the_reason(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "bad.jsonl", [{"type": "function", "function": {"name": "x", "parameters": "nope"}}])
    result = CliRunner().invoke(main, ["pools", "import", str(source), "--from", "openai", "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 1 and "parameters is not an object schema" in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_import_notes_specs_a_trainer_format_cannot_render_and_keeps_them(tmp_path: Path) -> None:
    level = {"type": "object", "properties": {"level": {"type": "integer", "enum": [1, 2, 3]}}}
    source = write_jsonl(tmp_path / "tools.jsonl", [
        {"type": "function", "function": {"name": "set_level", "description": "Sets a level.", "parameters": level}},
        {"type": "function", "function": {"name": "lookup", "description": "Looks a thing up.",
                                          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}])
    out = tmp_path / "catalog.jsonl"
    result = CliRunner().invoke(main, ["pools", "import", str(source), "--from", "openai", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 specs found, 2 written" in result.output  # kept: templates with their own tool format render it
    assert ("note: 1 written specs are tools LLaMA-Factory's default tool format cannot render" in result.output
            and "an enum of values that are not all strings (first: set_level; a llama-factory build" in result.output)
