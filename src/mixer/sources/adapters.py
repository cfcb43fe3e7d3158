"""Format adapters: one raw record in, one canonical row (as a dict) out.

Each adapter knows one input format and nothing else. A record the adapter cannot represent
raises :class:`RowError` with a reason the manifest counts; nothing is dropped silently.
Harmless fixes (merging two consecutive turns of the same speaker, removing an empty
trailing turn) are made, recorded in ``meta["repairs"]`` and counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from mixer.specs import Source


class RowError(ValueError):
    """This record cannot become a canonical row; the message is the counted reason."""


Row = dict[str, Any]

_SYSTEM_ROLES = {"system", "developer"}
_OPENAI_ROLES = {"user": "user", "assistant": "assistant", "tool": "tool", "function": "tool"}
_SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "bot": "assistant", "model": "assistant", "system": "system",
    "function_call": "function_call", "observation": "tool", "tool": "tool", "function": "tool",
}


def _maybe_json(value: Any, what: str) -> Any:
    """Columns from CSV or Parquet often hold JSON as a string: decode it."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(f"{what} is a string but not valid JSON ({exc.msg})") from None
    return value


def _text(content: Any, where: str) -> str:
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
                raise RowError(f"{where}: non-text content part {kind!r} (only text is supported)")
        return "".join(parts)
    raise RowError(f"{where}: content must be a string, got {type(content).__name__}")


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _tool_calls(calls: Any, where: str) -> str | None:
    """Normalize tool calls to the OpenAI list with string arguments, as a JSON string."""
    calls = _maybe_json(calls, f"{where}.tool_calls")
    if calls is None or calls == []:
        return None
    if isinstance(calls, dict):
        calls = [calls]
    if not isinstance(calls, list):
        raise RowError(f"{where}: tool_calls must be a list")
    out = []
    for call in calls:
        call = _maybe_json(call, f"{where}.tool_calls")  # datasets' Json values arrive as strings
        if not isinstance(call, dict):
            raise RowError(f"{where}: each tool call must be an object")
        fn = call.get("function", call)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise RowError(f"{where}: tool call without a function name")
        item: dict[str, Any] = {}
        if call.get("id") is not None:
            item["id"] = str(call["id"])
        item["type"] = "function"
        item["function"] = {"name": fn["name"], "arguments": _arguments(fn.get("arguments", {}))}
        out.append(item)
    return json.dumps(out, ensure_ascii=False)


def tool_spec(spec: Any, where: str = "tools") -> str:
    """One tool spec as an OpenAI ``{"type": "function", "function": {...}}`` JSON string."""
    spec = _maybe_json(spec, where)
    if not isinstance(spec, dict):
        raise RowError(f"{where}: a tool spec must be an object")
    fn = spec.get("function") if spec.get("type") == "function" or "function" in spec else spec
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise RowError(f"{where}: tool spec without a function name")
    params = fn.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise RowError(f"{where}: parameters of {fn['name']!r} must be a JSON Schema object")
    return json.dumps({"type": "function", "function": fn}, ensure_ascii=False)


def _tools(value: Any) -> list[str]:
    value = _maybe_json(value, "tools")
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise RowError("tools must be a list of tool specs")
    return [tool_spec(spec, f"tools[{i}]") for i, spec in enumerate(value)]


def _message(role: str, content: str, tool_calls: str | None = None,
             tool_call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    return {"role": role, "content": content, "tool_calls": tool_calls,
            "tool_call_id": tool_call_id, "name": name}


NO_ANSWER = "no assistant turn (kept as a prompt-only row)"  # SFT formats reject it; the prompt format takes it


def _finish_chat(system_parts: list[str], turns: list[dict[str, Any]], tools: list[str],
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
            raise RowError(f"empty {turn['role']} turn at position {i}")
    if not prompt and not any(t["role"] == "assistant" for t in turns):
        meta = {**meta, "repairs": [*meta.get("repairs", []), NO_ANSWER]}
    system = "\n\n".join(system_parts) if system_parts else None
    return {"kind": "chat", "system": system, "messages": turns, "tools": tools, "text": None, "meta": meta}


# --------------------------------------------------------------------------- formats


def openai(record: dict[str, Any], source: Source) -> Row:
    """OpenAI chat: ``messages`` (with ``tool_calls`` and ``tool`` turns) and optional ``tools``."""
    messages = _maybe_json(record.get("messages"), "messages")
    if not isinstance(messages, list):
        raise RowError("messages must be a list of {role, content} objects")
    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise RowError(f"{where}: expected an object with role and content")
        role = msg.get("role")
        if role in _SYSTEM_ROLES:
            if turns:
                raise RowError(f"{where}: system message after the conversation started")
            system_parts.append(_text(msg.get("content"), where))
            continue
        if role not in _OPENAI_ROLES:
            raise RowError(f"{where}: unknown role {role!r} (expected system, user, assistant or tool)")
        calls = msg.get("tool_calls")
        if calls is None and msg.get("function_call") is not None:
            calls = [{"type": "function", "function": msg["function_call"]}]
        turns.append(_message(
            _OPENAI_ROLES[role], _text(msg.get("content"), where),
            _tool_calls(calls, where) if role == "assistant" else None,
            str(msg["tool_call_id"]) if msg.get("tool_call_id") is not None else None,
            msg.get("name") if isinstance(msg.get("name"), str) else None,
        ))
    tools = _tools(record.get("tools", record.get("functions")))
    return _finish_chat(system_parts, turns, tools, {})


def sharegpt(record: dict[str, Any], source: Source) -> Row:
    """ShareGPT / LLaMA-Factory: ``conversations`` of ``{from, value}``, ``system``, ``tools``."""
    convo = _maybe_json(record.get("conversations"), "conversations")
    if not isinstance(convo, list):
        raise RowError("conversations must be a list of {from, value} objects")
    system_parts = [record["system"]] if isinstance(record.get("system"), str) and record["system"] else []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(convo):
        where = f"conversations[{i}]"
        if not isinstance(msg, dict):
            raise RowError(f"{where}: expected an object with from and value")
        speaker = msg.get("from", msg.get("role"))
        role = _SHAREGPT_ROLES.get(str(speaker).lower()) if speaker is not None else None
        if role is None:
            raise RowError(f"{where}: unknown speaker {speaker!r} (expected human, gpt, system, "
                           "function_call or observation)")
        value = _text(msg.get("value", msg.get("content")), where)
        if role == "system":
            if turns:
                raise RowError(f"{where}: system turn after the conversation started")
            system_parts.append(value)
        elif role == "function_call":
            turns.append(_message("assistant", "", _tool_calls(_maybe_json(value, where), where)))
        else:
            turns.append(_message(role, value))
    return _finish_chat(system_parts, turns, _tools(record.get("tools")), {})


def alpaca(record: dict[str, Any], source: Source) -> Row:
    """Alpaca: ``instruction`` + optional ``input`` -> user, ``output`` -> assistant."""
    instruction = record.get("instruction")
    output = record.get("output")
    if not isinstance(instruction, str) or not isinstance(output, str):
        raise RowError("alpaca rows need string instruction and output fields")
    extra = record.get("input")
    user = instruction if not extra else f"{instruction}\n\n{extra}"
    turns: list[dict[str, Any]] = []
    history = _maybe_json(record.get("history"), "history") or []
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise RowError(f"history[{i}]: expected a [user, assistant] pair of strings")
        turns += [_message("user", pair[0]), _message("assistant", pair[1])]
    turns += [_message("user", user), _message("assistant", output)]
    system = record.get("system")
    return _finish_chat([system] if isinstance(system, str) and system else [], turns, [], {})


_HH_SPLIT = re.compile(r"\n\n(Human|Assistant): ")


def hh_rlhf(record: dict[str, Any], source: Source) -> Row:
    """Anthropic HH-RLHF: a ``chosen`` or ``rejected`` "\\n\\nHuman: ... \\n\\nAssistant: ..." transcript.

    Two artifacts of the published data are repaired and recorded: consecutive turns by the
    same speaker are merged (joined by a blank line), and an empty final Assistant turn is
    removed.
    """
    transcript = record.get(source.side)
    if not isinstance(transcript, str):
        raise RowError(f"hh-rlhf rows need a string {source.side!r} field")
    parts = _HH_SPLIT.split(transcript)
    if parts[0].strip() or len(parts) < 3:
        raise RowError("transcript does not start with '\\n\\nHuman: '")
    repairs: list[str] = []
    turns: list[dict[str, Any]] = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        role = "user" if speaker == "Human" else "assistant"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + content
            repairs.append("merged consecutive turns")
        else:
            turns.append(_message(role, content))
    if len(turns) > 1 and turns[-1]["role"] == "assistant" and not turns[-1]["content"].strip():
        turns.pop()
        repairs.append("removed empty final turn")
    return _finish_chat([], turns, [], {"repairs": repairs} if repairs else {})


_PROMPT_OWN = ("id", "system", "tools")  # columns the prompt format reads itself


def prompt(record: dict[str, Any], source: Source) -> Row:
    """Prompts for RL or evaluation (XSTest-like ``id,prompt,type,label`` CSVs, TRL prompt
    datasets): the ``prompt_field`` column, a string (one user turn) or a message list not
    ending in an assistant turn; ``system`` and ``tools`` columns are used; every other column
    is kept in ``meta["columns"]``."""
    field_name = source.prompt_field
    raw = record.get(field_name)
    try:
        value = _maybe_json(raw, field_name)
    except RowError:
        value = raw  # plain text that happens to start with "[" or "{" ("[Caveat: ...] Act as ..."): a prompt
    if isinstance(raw, str) and not isinstance(value, list):
        value = raw  # only a message list is structure; a JSON object in a prompt column is the prompt's text
    if isinstance(value, str):
        if not value.strip():
            raise RowError(f"empty prompt in {field_name!r}")
        system = record.get("system")
        parts = [system] if isinstance(system, str) and system else []
        row = _finish_chat(parts, [_message("user", value)], _tools(record.get("tools")), {}, prompt=True)
    elif isinstance(value, list):
        sharegpt_style = bool(value) and isinstance(value[0], dict) and "from" in value[0]
        inner = {"conversations": value, "system": record.get("system"), "tools": record.get("tools")}
        row = sharegpt(inner, source) if sharegpt_style else openai({"messages": value, "tools": record.get("tools")}, source)
        if not sharegpt_style and isinstance(record.get("system"), str) and record["system"]:
            row["system"] = record["system"] if row["system"] is None else f"{record['system']}\n\n{row['system']}"
        if row["messages"][-1]["role"] == "assistant":
            raise RowError(f"{field_name!r} ends with an assistant turn: it is a conversation, not a prompt "
                           "(read it with format = \"openai\"; the prompt output format cuts the answer off)")
        repairs = [r for r in row["meta"].pop("repairs", []) if r != NO_ANSWER]  # expected of a prompt
        if repairs:
            row["meta"]["repairs"] = repairs
    else:
        kind = "nothing (missing or null)" if value is None else f"{value!r} ({type(value).__name__})"
        raise RowError(f"prompt rows need a string or a message list in {field_name!r}, got {kind}")
    extra = {k: v for k, v in record.items() if k != field_name and k not in _PROMPT_OWN}
    if extra:
        row["meta"]["columns"] = json.loads(json.dumps(extra, ensure_ascii=False, default=str))
    return row


def canonical(record: dict[str, Any], source: Source) -> Row:
    """mixer's own rows (a canonical output read back): kind, system, turns and tools as stored."""
    if record.get("kind") == "document":
        return document({**record, source.text_field: record.get("text")}, source)
    row = openai({"messages": record.get("messages"), "tools": record.get("tools")}, source)
    if record.get("system") is not None:
        if not isinstance(record["system"], str):
            raise RowError("system must be a string")
        row["system"] = record["system"] if row["system"] is None else f"{record['system']}\n\n{row['system']}"
    return row


def document(record: dict[str, Any], source: Source) -> Row:
    """A plain document: the ``text_field`` column becomes ``text``; ``title`` is kept in meta."""
    text = record.get(source.text_field)
    if not isinstance(text, str):
        raise RowError(f"document rows need a string {source.text_field!r} field")
    if not text.strip():
        raise RowError("empty document text")
    meta = {"title": record["title"]} if isinstance(record.get("title"), str) else {}
    return {"kind": "document", "system": None, "messages": [], "tools": [], "text": text, "meta": meta}


ADAPTERS: dict[str, Callable[[dict[str, Any], Source], Row]] = {
    "canonical": canonical, "openai": openai, "sharegpt": sharegpt, "alpaca": alpaca, "hh-rlhf": hh_rlhf, "document": document,
    "prompt": prompt,
}

# Columns that hold an answer: a record with one of them is not prompt-only, so auto-detection
# never reads it as prompts (which would move the answers into meta).
_ANSWER_COLUMNS = {"completion", "response", "output", "answer", "chosen", "rejected", "messages", "conversations"}


def detect(columns: set[str], source: Source) -> str | None:
    """Pick the adapter from the columns of the first records; None when nothing fits."""
    if {"id", "source", "kind", "system", "messages", "tools", "text", "meta"} <= columns:
        return "canonical"
    if source.kind == "document":
        return "document"
    if "messages" in columns:
        return "openai"
    if "conversations" in columns:
        return "sharegpt"
    if {"instruction", "output"} <= columns:
        return "alpaca"
    if source.side in columns and {"chosen", "rejected"} & columns:
        return "hh-rlhf"
    if source.text_field in columns and source.kind != "chat":
        return "document"
    if source.prompt_field in columns and not columns & _ANSWER_COLUMNS:
        return "prompt"
    return None


def rename(record: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """Apply ``fields = {expected = "actual"}`` renames so odd column names reach the adapter."""
    if not fields:
        return record
    out = dict(record)
    for expected, actual in fields.items():
        if actual in out:
            out[expected] = out.pop(actual)
    return out
