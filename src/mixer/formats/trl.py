"""TRL SFTTrainer / axolotl ``chat_template``: ``messages`` + ``tools`` (JSON schemas).

Tool specs and tool calls are stored with the ``datasets`` ``Json`` feature: each is kept as
JSON in Parquet and decoded to the original dict, so schemas that differ across rows (the same
parameter a string in one spec and an object in another) load without Arrow type errors, and
chat templates get dicts (tool-call ``arguments`` included) as transformers expects.
"""

from __future__ import annotations

import json
from typing import Any

from mixer.formats.common import openai_messages, require_chat, tools


def convert(row: dict[str, Any]) -> dict[str, Any]:
    require_chat(row, "trl")
    messages = []
    for m in openai_messages(row):
        calls = [
            {**c, "function": {**c["function"], "arguments": _arguments(c["function"]["arguments"])}}
            for c in m.pop("tool_calls", [])
        ]
        messages.append({"role": m["role"], "content": m["content"], "tool_calls": calls or None,
                         "tool_call_id": m.get("tool_call_id"), "name": m.get("name")})
    return {"messages": messages, "tools": tools(row)}


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # not JSON: keep the string rather than lose it


def features() -> Any:
    import datasets

    return datasets.Features({
        "messages": datasets.List({
            "role": datasets.Value("string"), "content": datasets.Value("string"),
            "tool_calls": datasets.List(datasets.Json()), "tool_call_id": datasets.Value("string"),
            "name": datasets.Value("string"),
        }),
        "tools": datasets.List(datasets.Json()),
    })
