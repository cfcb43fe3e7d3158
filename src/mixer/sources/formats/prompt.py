"""Prompt input (RL or evaluation): a ``prompt_field`` string or message list, no answer."""

from __future__ import annotations

import json
from typing import Any

from mixer.specs import Source
from mixer.sources.adapters import NO_ANSWER, Row, RowError, finish_chat, maybe_json, tool_specs, turn
from mixer.sources.formats import InputFormat, openai, sharegpt


_PROMPT_OWN = ("id", "system", "tools")  # columns the prompt format reads itself


def prompt(record: dict[str, Any], source: Source) -> Row:
    """Prompts for RL or evaluation (XSTest-like ``id,prompt,type,label`` CSVs, TRL prompt
    datasets): the ``prompt_field`` column, a string (one user turn) or a message list not
    ending in an assistant turn; ``system`` and ``tools`` columns are used; every other column
    is kept in ``meta["columns"]``."""
    field_name = source.prompt_field
    raw = record.get(field_name)
    try:
        value = maybe_json(raw, field_name)
    except RowError:
        value = raw  # plain text that happens to start with "[" or "{" ("[Caveat: ...] Act as ..."): a prompt
    if isinstance(raw, str) and not isinstance(value, list):
        value = raw  # only a message list is structure; a JSON object in a prompt column is the prompt's text
    if isinstance(value, str):
        if not value.strip():
            raise RowError(f"empty prompt in {field_name!r}")
        system = record.get("system")
        parts = [system] if isinstance(system, str) and system else []
        row = finish_chat(parts, [turn("user", value)], tool_specs(record.get("tools")), {}, prompt=True)
    elif isinstance(value, list):
        sharegpt_style = bool(value) and isinstance(value[0], dict) and "from" in value[0]
        inner = {"conversations": value, "system": record.get("system"), "tools": record.get("tools")}
        row = sharegpt.sharegpt(inner, source) if sharegpt_style else openai.openai({"messages": value, "tools": record.get("tools")}, source)
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


# Columns that hold an answer: a record with one of them is not prompt-only, so auto-detection
# never reads it as prompts (which would move the answers into meta).
_ANSWER_COLUMNS = {"completion", "response", "output", "answer", "chosen", "rejected", "messages", "conversations"}


def _detect(columns: set[str], source: Source) -> bool:
    return source.prompt_field in columns and not columns & _ANSWER_COLUMNS


FORMAT = InputFormat("prompt", prompt, "{prompt_field!r} alone", _detect, order=60)
