"""A validator for OpenAI's chat fine-tuning JSONL, written from the published format rules.

Used by the tests as the stand-in for OpenAI's own upload checks (no network here). Rules:
each line is an object with ``messages`` (required), optional ``tools`` and
``parallel_tool_calls``; roles are system/developer/user/assistant/tool; content is a string
(an assistant turn with ``tool_calls`` may have null or empty content); optional ``weight`` on
assistant turns is 0 or 1; at least one assistant message; tool calls carry ``id``,
``type: function`` and ``function.name`` / ``function.arguments`` (a JSON string); each tool
message names a previous call by ``tool_call_id``; tools are ``{"type": "function",
"function": {"name", "description"?, "parameters"?}}`` with names matching
``^[a-zA-Z0-9_-]{1,64}$`` and object-typed parameters.
"""

from __future__ import annotations

import json
import re
from typing import Any

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ROLES = {"system", "developer", "user", "assistant", "tool"}


def validate_line(line: str) -> list[str]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return [f"not JSON: {exc}"]
    if not isinstance(obj, dict):
        return ["line is not an object"]
    errors = [f"unexpected key {k!r}" for k in obj if k not in ("messages", "tools", "parallel_tool_calls")]
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return errors + ["messages missing or empty"]
    call_ids: set[str] = set()
    for i, m in enumerate(messages):
        errors += _message(i, m, call_ids)
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        errors.append("no assistant message")
    for j, tool in enumerate(obj.get("tools") or []):
        errors += _tool(j, tool)
    return errors


def _message(i: int, m: Any, call_ids: set[str]) -> list[str]:
    if not isinstance(m, dict):
        return [f"message {i} is not an object"]
    errors = []
    role = m.get("role")
    if role not in ROLES:
        errors.append(f"message {i}: unknown role {role!r}")
    content = m.get("content")
    calls = m.get("tool_calls")
    if role == "assistant" and calls:
        if content not in (None, "") and not isinstance(content, str):
            errors.append(f"message {i}: content must be a string or null")
        for call in calls:
            if not isinstance(call, dict) or call.get("type") != "function" or not call.get("id"):
                errors.append(f"message {i}: tool call needs id and type function")
                continue
            fn = call.get("function") or {}
            if not isinstance(fn.get("name"), str) or not NAME.match(fn["name"]):
                errors.append(f"message {i}: bad function name {fn.get('name')!r}")
            if not isinstance(fn.get("arguments"), str):
                errors.append(f"message {i}: arguments must be a JSON string")
            else:
                try:
                    json.loads(fn["arguments"])
                except json.JSONDecodeError:
                    errors.append(f"message {i}: arguments are not valid JSON")
            call_ids.add(call["id"])
    elif not isinstance(content, str) or (role != "assistant" and not content.strip()):
        errors.append(f"message {i}: content must be a non-empty string")
    if role == "tool" and m.get("tool_call_id") not in call_ids:
        errors.append(f"message {i}: tool_call_id does not match a previous call")
    if "weight" in m and m["weight"] not in (0, 1):
        errors.append(f"message {i}: weight must be 0 or 1")
    return errors


def _tool(j: int, tool: Any) -> list[str]:
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        return [f"tool {j}: expected {{type: function, function: {{...}}}}"]
    fn = tool["function"]
    errors = []
    if not isinstance(fn.get("name"), str) or not NAME.match(fn["name"]):
        errors.append(f"tool {j}: bad name {fn.get('name')!r}")
    params = fn.get("parameters")
    if params is not None and (not isinstance(params, dict) or params.get("type") != "object"):
        errors.append(f"tool {j}: parameters must be an object schema")
    return errors
