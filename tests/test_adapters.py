"""Format adapters on hand-made edge cases and on the real HH-RLHF slice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import HH, needs_shared
from mixer.errors import RecipeError
from mixer.recipe import Source
from mixer.sources.formats import FORMATS
from mixer.sources.adapters import RowError, rename
from mixer.sources.read import read_source

SRC = Source(name="s", path="/nonexistent")


def roles(row: dict) -> list[str]:
    return [m["role"] for m in row["messages"]]


def test_openai_leading_system_moves_to_the_system_column() -> None:
    row = FORMATS["openai"].adapt({"messages": [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}, SRC)
    assert row["system"] == "Be kind." and roles(row) == ["user", "assistant"]


def test_openai_tool_calls_become_a_json_string_with_string_arguments() -> None:
    row = FORMATS["openai"].adapt({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "rain"},
        {"role": "assistant", "content": "It rains."}],
        "tools": [{"name": "get_weather", "description": "d", "parameters": {"type": "object", "properties": {}}}]}, SRC)
    calls = json.loads(row["messages"][1]["tool_calls"])
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert row["messages"][2]["tool_call_id"] == "c1" and row["messages"][2]["role"] == "tool"
    assert json.loads(row["tools"][0])["type"] == "function"  # bare spec wrapped


def test_openai_content_parts_are_joined_and_images_rejected() -> None:
    row = FORMATS["openai"].adapt({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                                      {"type": "text", "text": "b"}]},
                                        {"role": "assistant", "content": "c"}]}, SRC)
    assert row["messages"][0]["content"] == "ab"
    with pytest.raises(RowError, match="non-text content part 'image_url'"):
        FORMATS["openai"].adapt({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, SRC)


@pytest.mark.parametrize("messages, reason", [
    ([], "no conversation turns"),
    ([{"role": "wizard", "content": "x"}], "unknown role 'wizard'"),
    ([{"role": "user", "content": "  "}, {"role": "assistant", "content": "x"}], "empty user turn"),
    ([{"role": "assistant", "content": "x"}], "no user turn"),
    ([{"role": "user", "content": "x"}, {"role": "system", "content": "late"}], "system message after"),
    ("not json", "messages must be a list"),
])
def test_openai_invalid_rows_raise_a_reason(messages, reason: str) -> None:
    with pytest.raises(RowError, match=reason):
        FORMATS["openai"].adapt({"messages": messages}, SRC)


def test_sharegpt_maps_speakers_function_calls_and_observations() -> None:
    row = FORMATS["sharegpt"].adapt({"system": "sys", "tools": json.dumps([{"name": "f", "parameters": {"type": "object"}}]),
                             "conversations": [
                                 {"from": "human", "value": "do f"},
                                 {"from": "function_call", "value": '{"name": "f", "arguments": {"x": 1}}'},
                                 {"from": "observation", "value": "ok"},
                                 {"from": "gpt", "value": "done"}]}, SRC)
    assert row["system"] == "sys" and roles(row) == ["user", "assistant", "tool", "assistant"]
    assert json.loads(row["messages"][1]["tool_calls"])[0]["function"]["arguments"] == '{"x": 1}'
    assert len(row["tools"]) == 1


def test_sharegpt_unknown_speaker_is_rejected() -> None:
    with pytest.raises(RowError, match="unknown speaker 'narrator'"):
        FORMATS["sharegpt"].adapt({"conversations": [{"from": "narrator", "value": "x"}]}, SRC)


def test_alpaca_joins_instruction_and_input_and_keeps_history() -> None:
    row = FORMATS["alpaca"].adapt({"instruction": "Translate", "input": "chat", "output": "cat", "system": "S",
                           "history": [["hi", "hello"]]}, SRC)
    assert [m["content"] for m in row["messages"]] == ["hi", "hello", "Translate\n\nchat", "cat"]
    assert row["system"] == "S"


def test_alpaca_without_input_uses_the_instruction_alone() -> None:
    row = FORMATS["alpaca"].adapt({"instruction": "Say hi", "input": "", "output": "hi"}, SRC)
    assert row["messages"][0]["content"] == "Say hi"


def test_hh_rlhf_splits_turns_and_repairs_known_artifacts() -> None:
    text = "\n\nHuman: a\n\nAssistant: b\n\nAssistant: c\n\nHuman: d\n\nAssistant: "
    row = FORMATS["hh-rlhf"].adapt({"chosen": text, "rejected": text}, SRC)
    assert [(m["role"], m["content"]) for m in row["messages"]] == [("user", "a"), ("assistant", "b\n\nc"), ("user", "d")]
    assert row["meta"]["repairs"] == ["merged consecutive turns", "removed empty final turn"]


def test_hh_rlhf_side_selects_rejected() -> None:
    rec = {"chosen": "\n\nHuman: q\n\nAssistant: good", "rejected": "\n\nHuman: q\n\nAssistant: bad"}
    row = FORMATS["hh-rlhf"].adapt(rec, Source(name="s", path="/x", side="rejected"))
    assert row["messages"][-1]["content"] == "bad"


def test_document_uses_the_configured_text_field() -> None:
    row = FORMATS["document"].adapt({"body": "Some text.", "title": "T"}, Source(name="d", path="/x", text_field="body"))
    assert row["kind"] == "document" and row["text"] == "Some text." and row["meta"] == {"title": "T"}
    with pytest.raises(RowError, match="empty document text"):
        FORMATS["document"].adapt({"text": "   "}, SRC)


def test_rename_maps_odd_column_names() -> None:
    assert rename({"dialog": [1]}, {"messages": "dialog"}) == {"messages": [1]}


def test_detection_failure_lists_the_columns_seen(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n')
    with pytest.raises(RecipeError, match=r"saw: completion, prompt\. Expected messages"):
        read_source(Source(name="odd", path=str(path)))


@needs_shared
def test_hh_rlhf_real_slice_every_row_parses_and_alternates() -> None:
    frame, report = read_source(Source(name="hh", path=str(HH)))
    assert report.format == "hh-rlhf"
    assert report.rows_read == 2312 == frame.height and report.rows_rejected == 0
    for messages in frame.get_column("messages").to_list():
        r = [m["role"] for m in messages]
        assert r[0] == "user"
        assert all(a != b for a, b in zip(r, r[1:])), r
        assert all(m["content"].strip() for m in messages)
    # every repair is visible in the report and in the rows' meta
    assert sum(report.repairs.values()) == sum(
        len(json.loads(m).get("repairs", [])) for m in frame.get_column("meta").to_list())
    assert report.repairs["merged consecutive turns"] >= 1


@needs_shared
def test_hh_rlhf_real_slice_keeps_every_character_of_the_turns() -> None:
    import gzip
    import re

    frame, _ = read_source(Source(name="hh", path=str(HH)))
    with gzip.open(HH / "test.jsonl.gz", "rt", encoding="utf-8") as fh:
        originals = [json.loads(line)["chosen"] for line in fh]
    rows = zip(originals, frame.get_column("messages").to_list(), frame.get_column("meta").to_list())
    for original, messages, meta in rows:
        # Speaker labels become turn boundaries; merged turns are joined by the same blank line.
        expected = re.sub(r"\n\n(Human|Assistant): ", "\n\n", original)
        trailing = "\n\n" if "removed empty final turn" in json.loads(meta).get("repairs", []) else ""
        assert "\n\n" + "\n\n".join(m["content"] for m in messages) + trailing == expected
