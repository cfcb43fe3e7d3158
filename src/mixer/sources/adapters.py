"""What every input format's adapter shares: the rejection type, turn and tool normalisation,
the checks every chat must pass.

An adapter (one module per input format in :mod:`mixer.sources.formats`) turns one raw
record into one canonical row (as a dict). A record it cannot represent raises
:class:`RowError` with a reason the manifest counts; nothing is dropped silently. Harmless
fixes (merging two consecutive turns of the same speaker, removing an empty trailing turn)
are made, recorded in ``meta["repairs"]`` and counted.
"""

from __future__ import annotations

import json
from typing import Any

from mixer.errors import located


class RowError(ValueError):
    """This record cannot become a canonical row.

    ``reason`` is what the manifest counts, the same words for every record with the problem;
    ``where`` (the part of the record, ``messages[3]``) and ``at`` (a position in it) say where
    in this one; the message (rejects.jsonl, errors) is all three (:func:`mixer.errors.located`).
    """

    def __init__(self, reason: str, where: str | None = None, at: str | None = None) -> None:
        super().__init__(located(reason, where, at))
        self.reason, self.where, self.at = reason, where, at


Row = dict[str, Any]

SYSTEM_ROLES = {"system", "developer"}


def maybe_json(value: Any, what: str) -> Any:
    """Columns from CSV or Parquet often hold JSON as a string: decode it."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(f"{what} is a string but not valid JSON ({exc.msg})") from None
    return value


def content_text(content: Any, where: str) -> str:
    """Message content as a string: OpenAI content-part lists are joined if all text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RowError(f"non-text content part {kind!r} (only text is supported)", where)
        return "".join(parts)
    raise RowError(f"content must be a string, got {type(content).__name__}", where)


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def tool_calls_json(calls: Any, where: str) -> str | None:
    """Normalize tool calls to the OpenAI list with string arguments, as a JSON string."""
    calls = maybe_json(calls, f"{where}.tool_calls")
    if calls is None or calls == []:
        return None
    if isinstance(calls, dict):
        calls = [calls]
    if not isinstance(calls, list):
        raise RowError("tool_calls must be a list", where)
    out = []
    for call in calls:
        call = maybe_json(call, f"{where}.tool_calls")  # datasets' Json values arrive as strings
        if not isinstance(call, dict):
            raise RowError("each tool call must be an object", where)
        fn = call.get("function", call)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise RowError("tool call without a function name", where)
        item: dict[str, Any] = {}
        if call.get("id") is not None:
            item["id"] = str(call["id"])
        item["type"] = "function"
        item["function"] = {"name": fn["name"], "arguments": _arguments(fn.get("arguments", {}))}
        out.append(item)
    return json.dumps(out, ensure_ascii=False)


def tool_spec(spec: Any, where: str = "tools") -> str:
    """One tool spec as an OpenAI ``{"type": "function", "function": {...}}`` JSON string."""
    spec = maybe_json(spec, where)
    if not isinstance(spec, dict):
        raise RowError("a tool spec must be an object", where)
    fn = spec.get("function") if spec.get("type") == "function" or "function" in spec else spec
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise RowError("tool spec without a function name", where)
    params = fn.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise RowError(f"parameters of {fn['name']!r} must be a JSON Schema object", where)
    return json.dumps({"type": "function", "function": fn}, ensure_ascii=False)


def tool_specs(value: Any) -> list[str]:
    value = maybe_json(value, "tools")
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise RowError("tools must be a list of tool specs")
    return [tool_spec(spec, f"tools[{i}]") for i, spec in enumerate(value)]


def turn(role: str, content: str, tool_calls: str | None = None,
             tool_call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    return {"role": role, "content": content, "tool_calls": tool_calls,
            "tool_call_id": tool_call_id, "name": name}


NO_ANSWER = "no assistant turn (kept as a prompt-only row)"  # SFT formats reject it; the prompt format takes it


def finish_chat(system_parts: list[str], turns: list[dict[str, Any]], tools: list[str],
                 meta: dict[str, Any], *, prompt: bool = False) -> Row:
    """Shared checks for every chat format: turns present, non-empty, known roles.

    A conversation without any assistant turn is a prompt, not a demonstration: kept, but named
    in ``meta["repairs"]`` so the manifest counts it (unless the source was read as prompts).
    """
    if not turns:
        raise RowError("no conversation turns")
    if not any(t["role"] == "user" for t in turns):
        raise RowError("no user turn")
    for i, turn in enumerate(turns):
        if turn["role"] in ("user", "assistant") and not turn["content"].strip() and not turn["tool_calls"]:
            raise RowError(f"empty {turn['role']} turn", at=f"position {i}")
    if not prompt and not any(t["role"] == "assistant" for t in turns):
        meta = {**meta, "repairs": [*meta.get("repairs", []), NO_ANSWER]}
    system = "\n\n".join(system_parts) if system_parts else None
    return {"kind": "chat", "system": system, "messages": turns, "tools": tools, "text": None, "meta": meta}


def rename(record: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """Apply ``fields = {expected = "actual"}`` renames so odd column names reach the adapter."""
    if not fields:
        return record
    out = dict(record)
    for expected, actual in fields.items():
        if actual in out:
            out[expected] = out.pop(actual)
    return out
