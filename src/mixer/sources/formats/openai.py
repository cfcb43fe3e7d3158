"""OpenAI chat input: ``messages`` (system, user, assistant with ``tool_calls``, ``tool``), optional ``tools``."""

from __future__ import annotations

from typing import Any

from mixer.specs import Source
from mixer.sources.adapters import Row, RowError, SYSTEM_ROLES, content_text, finish_chat, maybe_json, tool_calls_json, tool_specs, turn
from mixer.sources.formats import InputFormat


_ROLES = {"user": "user", "assistant": "assistant", "tool": "tool", "function": "tool"}


def openai(record: dict[str, Any], source: Source) -> Row:
    """OpenAI chat: ``messages`` (with ``tool_calls`` and ``tool`` turns) and optional ``tools``."""
    messages = maybe_json(record.get("messages"), "messages")
    if not isinstance(messages, list):
        raise RowError("messages must be a list of {role, content} objects")
    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise RowError("expected an object with role and content", where)
        role = msg.get("role")
        if role in SYSTEM_ROLES:
            if turns:
                raise RowError("system message after the conversation started", where)
            system_parts.append(content_text(msg.get("content"), where))
            continue
        if role not in _ROLES:
            raise RowError(f"unknown role {role!r} (expected system, user, assistant or tool)", where)
        calls = msg.get("tool_calls")
        if calls is None and msg.get("function_call") is not None:
            calls = [{"type": "function", "function": msg["function_call"]}]
        turns.append(turn(
            _ROLES[role], content_text(msg.get("content"), where),
            tool_calls_json(calls, where) if role == "assistant" else None,
            str(msg["tool_call_id"]) if msg.get("tool_call_id") is not None else None,
            msg.get("name") if isinstance(msg.get("name"), str) else None,
        ))
    tools = tool_specs(record.get("tools", record.get("functions")))
    return finish_chat(system_parts, turns, tools, {})


FORMAT = InputFormat("openai", openai, "messages", lambda columns, source: "messages" in columns, order=10,
                     batch=True)
