"""OpenAI fine-tuning JSONL: one ``{"messages": [...], "tools": [...]}`` object per line.

Enforced (OpenAI's published chat fine-tuning format): known roles; string content, which may
be empty only on an assistant turn that calls tools; at least one assistant turn; tool calls
with ids, arguments as JSON strings, answered by ``tool`` turns naming those ids; tools as
``{"type": "function", "function": {"name", "description", "parameters"}}`` with names of
letters, digits, ``_`` and ``-`` (at most 64) and an object ``parameters`` schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

import polars as pl

from mixer.formats import trl
from mixer.formats.common import (Format, Unrepresentable, any_tools, has_json_feature, lines_of, messages_json,
                                  openai_messages, per_spec, plain_turns_refused, require_answer, require_chat, tools)
from mixer.formats.common import spec as parse_spec
from mixer.pyexpr import blank, json_string

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
NAME_RULE = ("a tool name is not allowed by OpenAI (letters, digits, _ and -, at most 64); "
             "[output] rename_tools = true renames such tools")


def convert(row: dict[str, Any]) -> dict[str, Any]:
    require_chat(row, "openai")
    require_answer(row, "openai")
    messages = openai_messages(row)
    pending: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m["content"], str):
            raise Unrepresentable(f"message {i}: content must be a string")
        if m["role"] == "assistant" and m.get("tool_calls"):
            for k, call in enumerate(m["tool_calls"]):
                call.setdefault("id", f"call_{i}_{k}")  # ids are required; make them positional
                if not NAME.match(call["function"]["name"]):
                    raise Unrepresentable(NAME_RULE, f"tool call name {call['function']['name']!r}")
                try:
                    json.loads(call["function"]["arguments"])
                except json.JSONDecodeError:
                    raise Unrepresentable("tool call arguments are not valid JSON") from None
                pending.append(call["id"])
            if not m["content"]:
                m["content"] = None
        elif m["role"] == "tool":
            if not pending:
                raise Unrepresentable(f"message {i}: tool result without a preceding tool call")
            m.setdefault("tool_call_id", pending[0])
            if m["tool_call_id"] not in pending:
                raise Unrepresentable(f"message {i}: tool_call_id {m['tool_call_id']!r} answers no call")
            pending.remove(m["tool_call_id"])
        elif not m["content"].strip():
            raise Unrepresentable(f"message {i}: empty {m['role']} content")
    if not any(m["role"] == "assistant" for m in messages):
        raise Unrepresentable("no assistant message to train on")
    specs = tools(row)
    for spec in specs:
        fn = spec["function"]
        if not NAME.match(fn["name"]):
            raise Unrepresentable(NAME_RULE, f"tool name {fn['name']!r}")
        params = fn.get("parameters")
        if params is not None and (not isinstance(params, dict) or params.get("type") != "object"):
            raise Unrepresentable(f"tool {fn['name']!r}: parameters must be a JSON Schema object")
    out: dict[str, Any] = {"messages": messages}
    if specs:
        out["tools"] = specs
    return out


def convert_frame(frame: pl.DataFrame) -> tuple[pl.Series, pl.Series] | None:
    """The JSON lines :func:`convert` writes, built at once by Polars string expressions (the
    bytes of ``json.dumps(row, ensure_ascii=False)``), and which rows they are. It takes the plain
    rows: a chat ending on an assistant turn, only user and assistant turns, every content (and
    the system prompt) a string that is not blank, every tool spec one OpenAI accepts. The other
    rows are left to :func:`convert` (a shard with a valid row left, tool turns say, goes row by
    row whole)."""
    spec_json = per_spec(frame, _spec_json)
    system = pl.col("system")
    converted = frame.select(
        ((pl.col("kind") == "chat")
         & (pl.col("messages").list.last().struct.field("role") == "assistant").fill_null(False)
         & ~pl.col("messages").list.eval(plain_turns_refused(blank_content=True)).list.any().fill_null(True)
         & ~pl.col("tools").list.eval(spec_json.is_null()).list.any().fill_null(False)
         & (system.is_null() | ~blank(system))).fill_null(False)).to_series()
    lines = lines_of(frame.filter(converted), lambda rows: pl.concat_str(
        messages_json(pl.when(system.is_not_null()).then(json_string(system))),
        pl.concat_str(pl.lit(', "tools": ['), pl.col("tools").list.eval(spec_json).list.join(", "), pl.lit("]"),
                      any_tools()).fill_null(""),
        pl.lit("}")))
    return lines, converted


def _spec_json(text: str) -> str | None:
    """A tool spec's JSON as :func:`convert` writes it, or None if OpenAI would refuse it."""
    try:
        parsed = parse_spec(text)
        fn = parsed["function"]
        params = fn.get("parameters")
        if not NAME.match(fn["name"]) or (params is not None and (not isinstance(params, dict)
                                                                  or params.get("type") != "object")):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    return json.dumps(parsed, ensure_ascii=False)


def features() -> Any:
    """The card's features; ``None`` (types inferred) with ``datasets`` < 4.7.

    The JSONL is OpenAI's upload format, so tool specs must stay objects in the file; ``datasets``
    before 4.7 has no ``Json`` feature and cannot cast objects to text, so there the card declares no
    features: the files load, with tool specs as Arrow-unified structs (keys other rows use come
    back as ``None``). The files themselves are exact either way.
    """
    import datasets

    if not has_json_feature():
        return None
    string = datasets.Value("string")
    call = {"id": string, "type": string, "function": {"name": string, "arguments": string}}
    return datasets.Features({
        "messages": datasets.List({"role": string, "content": string, "tool_calls": datasets.List(call),
                                   "tool_call_id": string, "name": string}),
        "tools": datasets.List(datasets.Json()),
    })


FORMAT = Format("openai", "jsonl", convert, "OpenAI fine-tuning JSONL", features, NAME, read_back=trl.read_back,
                order=30, convert_frame=convert_frame, one_file_per_split=True)
