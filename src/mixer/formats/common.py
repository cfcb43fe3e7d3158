"""Pieces every trainer format shares: the rejection type and canonical-row helpers."""

from __future__ import annotations

import json
from typing import Any


class Unrepresentable(ValueError):
    """The target format cannot carry this row; the message is the counted reason."""


def tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A canonical turn's tool calls as OpenAI objects (arguments stay JSON strings)."""
    return json.loads(message["tool_calls"]) if message.get("tool_calls") else []


def tools(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A row's tool specs as ``{"type": "function", "function": {...}}`` objects."""
    return [json.loads(t) for t in row.get("tools") or []]


def require_chat(row: dict[str, Any], fmt: str) -> None:
    if row["kind"] != "chat":
        raise Unrepresentable(f"{fmt} holds conversations; documents need format = \"text\"")


def require_answer(row: dict[str, Any], fmt: str) -> None:
    """SFT formats train on a final assistant turn: a prompt-only row is counted, never written half."""
    if row["kind"] == "chat" and (not row["messages"] or row["messages"][-1]["role"] != "assistant"):
        raise Unrepresentable(f"{fmt} trains on a final assistant turn and this row has none (a prompt-only row: "
                              "use format = \"prompt\")")


def openai_messages(row: dict[str, Any], *, system: bool = True) -> list[dict[str, Any]]:
    """OpenAI-style messages: the system prompt first, then turns with only the keys they use."""
    out: list[dict[str, Any]] = []
    if system and row.get("system") is not None:
        out.append({"role": "system", "content": row["system"]})
    for m in row["messages"]:
        msg: dict[str, Any] = {"role": m["role"], "content": m["content"]}
        calls = tool_calls(m)
        if calls:
            msg["tool_calls"] = calls
        if m["role"] == "tool":
            if m.get("tool_call_id") is not None:
                msg["tool_call_id"] = m["tool_call_id"]
            if m.get("name") is not None:
                msg["name"] = m["name"]
        out.append(msg)
    return out


def render_tools_block(specs: list[dict[str, Any]]) -> str:
    """The tools block used where a trainer has no tools field (torchtune, plain text)."""
    lines = "\n".join(json.dumps(s, ensure_ascii=False) for s in specs)
    return ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            f"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{lines}\n</tools>")


def has_json_feature() -> bool:
    """Whether the installed ``datasets`` has the ``Json`` feature (4.7 and later)."""
    import datasets

    return hasattr(datasets, "Json")


def json_feature() -> Any:
    """The feature of a free-form JSON value: ``Json`` where ``datasets`` has it, else a string.

    ``datasets`` before 4.7 (LLaMA-Factory 0.9.5 pins 4.0.0) cannot even parse a card that
    declares ``Json``, and Arrow structs would pad heterogeneous tool schemas with nulls, so there
    the value is written as its JSON text: lossless, loadable by every ``datasets`` version, and
    turned back into objects by :func:`decode_json` (TRL's SFT/DPO trainers decode a string
    ``tools`` column themselves).
    """
    import datasets

    return datasets.Json() if has_json_feature() else datasets.Value("string")


def encode_json(value: Any) -> Any:
    """A value for a :func:`json_feature` column: as is for ``Json``, JSON text otherwise."""
    if value is None or has_json_feature():
        return value
    return json.dumps(value, ensure_ascii=False)


_JSON_KEYS = ("tools", "tool_calls")


def decode_json(example: dict[str, Any]) -> dict[str, Any]:
    """Turn the JSON-text ``tools`` and ``tool_calls`` of a row written without the ``Json``
    feature back into objects (a no-op on rows loaded with ``Json``). For ``datasets`` < 4.7:
    ``ds.with_transform(mixer.formats.decode_json)``-style use on single rows, or call it per row."""
    out = dict(example)
    for key, value in example.items():
        if key in _JSON_KEYS and isinstance(value, str):
            out[key] = json.loads(value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out[key] = [decode_json(v) for v in value]
    return out
