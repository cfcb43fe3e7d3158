"""``irrelevance``: a tool-call demonstration becomes an irrelevance example (the called tool
removed, the call replaced by a no-call answer), with the original kept on the row."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from conftest import chats, write_jsonl, write_recipe
from mixer import pipeline, transforms
from mixer.recipe import Source
from mixer.sources.read import read_source

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city.",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
STOCKS = {"type": "function", "function": {"name": "get_stock_price", "description": "Latest price of a ticker.",
                                           "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}}}}


def apigen_rows(n: int) -> list[dict]:
    """APIGen/xLAM-shaped rows: a request, a call, its result, a final answer."""
    rows = []
    for i in range(n):
        call = [{"id": f"call_{i}", "type": "function",
                 "function": {"name": "get_weather", "arguments": json.dumps({"city": f"City {i}"})}}]
        rows.append({"messages": [
            {"role": "system", "content": "You can call functions."},
            {"role": "user", "content": f"What's the weather in City {i}?"},
            {"role": "assistant", "content": "", "tool_calls": call},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": "{\"temp_c\": 21}"},
            {"role": "assistant", "content": f"It is 21 °C in City {i}."},
        ], "tools": [WEATHER, STOCKS]})
    return rows


def read(path: Path) -> pl.DataFrame:
    return read_source(Source(name="s", path=str(path)))[0]


def test_a_call_becomes_a_no_call_answer_without_the_called_tool(tmp_path: Path) -> None:
    frame = read(write_jsonl(tmp_path / "a.jsonl", apigen_rows(20) + chats(5)))
    out = transforms.irrelevance(frame, p=1.0, seed=0)
    relabelled = 0
    for before, after in zip(frame.iter_rows(named=True), out.iter_rows(named=True)):
        if not any(m["tool_calls"] for m in before["messages"]):
            assert after == before  # rows without a call pass unchanged
            continue
        relabelled += 1
        assert after["messages"][:1] == before["messages"][:1]  # the turns before the call, byte-identical
        final = after["messages"][-1]
        assert len(after["messages"]) == 2 and final["role"] == "assistant" and final["tool_calls"] is None
        assert [json.loads(t)["function"]["name"] for t in after["tools"]] == ["get_stock_price"]
        kept = json.loads(after["meta"])["aug.0.irrelevance"]
        assert kept["called"] == ["get_weather"] and json.loads(kept["removed_tools"][0]) == WEATHER
        assert kept["original_turns"] == before["messages"][1:]  # nothing lost
        assert kept["answer"].startswith("builtin:nc-")
    assert relabelled == 20
    assert out.equals(transforms.irrelevance(frame, p=1.0, seed=0))  # deterministic


def test_answers_come_from_a_pool_file_and_p_picks_rows(tmp_path: Path) -> None:
    frame = read(write_jsonl(tmp_path / "a.jsonl", apigen_rows(200)))
    (tmp_path / "answers.txt").write_text("No tool here fits; I won't call one.\n")
    out = transforms.irrelevance(frame, p=0.5, pool="answers.txt", base_dir=tmp_path, seed=1)
    finals = out.get_column("messages").list.last().struct.field("content")
    relabelled = int((finals == "No tool here fits; I won't call one.").sum())
    assert 60 < relabelled < 140


def test_a_build_counts_relabelled_rows(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", apigen_rows(30))
    r = write_recipe(tmp_path / "r.toml", 'unit = "examples"\n[sources.a]\npath = "a.jsonl"\nexamples = 30\n'
                                          '[[sources.a.transforms]]\ntype = "irrelevance"\np = 0.5\n'
                                          '[output]\nformat = "openai"\n')
    m = pipeline.build(r).manifest
    step = m["sources"]["a"]["transforms"][0]
    assert step["type"] == "irrelevance" and 5 < step["augmented_selected"] < 25
    assert step["prepared"]["pool"]["builtin"]["entries"] == 8
    assert m["export"]["rows"]["train"] == 30  # relabelled rows are valid OpenAI rows
