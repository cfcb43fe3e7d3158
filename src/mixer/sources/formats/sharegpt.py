"""ShareGPT / LLaMA-Factory input: ``conversations`` of ``{from, value}``, ``system``, ``tools``."""

from __future__ import annotations

from typing import Any

from mixer.specs import Source
from mixer.sources.adapters import Row, RowError, content_text, finish_chat, maybe_json, tool_calls_json, tool_specs, turn
from mixer.sources.formats import InputFormat


_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "bot": "assistant", "model": "assistant", "system": "system",
    "function_call": "function_call", "observation": "tool", "tool": "tool", "function": "tool",
}


def sharegpt(record: dict[str, Any], source: Source) -> Row:
    """ShareGPT / LLaMA-Factory: ``conversations`` of ``{from, value}``, ``system``, ``tools``."""
    convo = maybe_json(record.get("conversations"), "conversations")
    if not isinstance(convo, list):
        raise RowError("conversations must be a list of {from, value} objects")
    system_parts = [record["system"]] if isinstance(record.get("system"), str) and record["system"] else []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(convo):
        where = f"conversations[{i}]"
        if not isinstance(msg, dict):
            raise RowError("expected an object with from and value", where)
        speaker = msg.get("from", msg.get("role"))
        role = _ROLES.get(str(speaker).lower()) if speaker is not None else None
        if role is None:
            raise RowError(f"unknown speaker {speaker!r} (expected human, gpt, system, "
                           "function_call or observation)", where)
        value = content_text(msg.get("value", msg.get("content")), where)
        if role == "system":
            if turns:
                raise RowError("system turn after the conversation started", where)
            system_parts.append(value)
        elif role == "function_call":
            turns.append(turn("assistant", "", tool_calls_json(maybe_json(value, where), where)))
        else:
            turns.append(turn(role, value))
    return finish_chat(system_parts, turns, tool_specs(record.get("tools")), {})


FORMAT = InputFormat("sharegpt", sharegpt, "conversations",
                     lambda columns, source: "conversations" in columns, order=20)
