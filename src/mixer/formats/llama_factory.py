"""LLaMA-Factory ``sharegpt``: ``conversations`` of ``{from, value}``, ``system``, ``tools``.

LLaMA-Factory requires strict alternation: human or observation turns at even positions,
gpt or function_call turns at odd positions, ending on gpt or function_call. Rows that break
it (two user turns in a row, parallel tool results, an assistant turn with both text and tool
calls) are rejected with the reason, never reshaped silently.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import polars as pl

from mixer.formats.common import (Format, ReadBack, Unrepresentable, any_tools, lines_of, parsed, per_spec, require_chat,
                                  tool_calls)
from mixer.formats.common import spec as parse_spec
from mixer.pyexpr import escaped, json_string

_EVEN = ("human", "observation")
_ODD = ("gpt", "function_call")


def convert(row: dict[str, Any]) -> dict[str, Any]:
    require_chat(row, "llama-factory")
    conversations = []
    for m in row["messages"]:
        calls = tool_calls(m)
        if m["role"] == "user":
            conversations.append({"from": "human", "value": m["content"]})
        elif m["role"] == "tool":
            conversations.append({"from": "observation", "value": m["content"]})
        elif calls:
            if m["content"].strip():
                raise Unrepresentable("assistant turn has both text and tool calls")
            value = [{"name": c["function"]["name"], "arguments": _arguments(c["function"]["arguments"])} for c in calls]
            conversations.append({"from": "function_call",
                                  "value": json.dumps(value[0] if len(value) == 1 else value, ensure_ascii=False)})
        else:
            conversations.append({"from": "gpt", "value": m["content"]})
    for i, turn in enumerate(conversations):
        allowed = _EVEN if i % 2 == 0 else _ODD
        if turn["from"] not in allowed:
            raise Unrepresentable(f"turns do not alternate: {turn['from']} at position {i}, expected "
                                  f"{' or '.join(allowed)}")
    if len(conversations) % 2:
        raise Unrepresentable("conversation does not end with an assistant turn")
    # json.dumps of the list of the specs' functions, from each function's JSON text (made once a spec)
    functions = [_function_json(t) for t in row.get("tools") or []]
    return {"conversations": conversations, "system": row.get("system") or "",
            "tools": "[" + ", ".join(functions) + "]" if functions else ""}


@functools.lru_cache(maxsize=65_536)
def _function_json(spec: str) -> str:
    return json.dumps(parse_spec(spec)["function"], ensure_ascii=False)


def convert_frame(frame: pl.DataFrame) -> tuple[pl.Series, pl.Series] | None:
    """The JSON lines :func:`convert` writes, built at once by Polars string expressions (the
    bytes of ``json.dumps(row, ensure_ascii=False)``), and which rows they are: chats whose turns
    are string user and assistant turns in strict alternation, from a user turn to an assistant
    turn, without tool calls. The other rows are left to :func:`convert`."""
    try:
        functions = per_spec(frame, lambda text: escaped(_function_json(text)))
    except (ValueError, KeyError, TypeError, IndexError):
        return None  # a spec the row converter cannot read either: it says so
    turn = pl.element().struct
    role, calls = turn.field("role"), turn.field("tool_calls")
    position_ok = pl.when(pl.int_range(pl.len()) % 2 == 0).then(role == "user").otherwise(role == "assistant")
    plain = (position_ok & turn.field("content").is_not_null() & (calls.is_null() | (calls == ""))).fill_null(False)
    n = pl.col("messages").list.len()
    converted = frame.select(((pl.col("kind") == "chat") & (n > 0) & (n % 2 == 0)
                              & pl.col("messages").list.eval(plain).list.all()).fill_null(False)).to_series()
    speaker = pl.when(role == "user").then(pl.lit("human")).otherwise(pl.lit("gpt"))
    # the tools string's JSON, from each function's JSON escaped once (a string of a string)
    tools = pl.concat_str(pl.lit('"' + escaped("[")), pl.col("tools").list.eval(functions).list.join(escaped(", ")),
                          pl.lit(escaped("]") + '"'), any_tools()).fill_null('""')
    lines = lines_of(frame.filter(converted), lambda rows: pl.concat_str(
        pl.lit('{"conversations": ['),
        pl.col("messages").list.eval(pl.concat_str(pl.lit('{"from": "'), speaker, pl.lit('", "value": '),
                                                   json_string(turn.field("content")), pl.lit("}"))).list.join(", "),
        pl.lit('], "system": '), json_string(pl.col("system").fill_null("")),
        pl.lit(', "tools": '), tools, pl.lit("}")))
    return lines, converted


DEFAULT_TOOL_FORMAT = ("tools LLaMA-Factory's default tool format cannot render, though templates with a tool "
                       "format of their own (qwen, llama3, ...) do: ")


def tool_problem(text: str) -> str | None:
    """Why LLaMA-Factory's ``default`` tool format cannot render this spec, or None.

    ``DefaultToolUtils.tool_formatter`` (0.9.5) lists each property of ``parameters.properties``
    with ``param.get``, joins a truthy ``enum`` with ``", ".join`` and reads ``items.get("type")``;
    anything else there raises while LLaMA-Factory encodes the row. Templates with a tool format of
    their own (qwen, llama3, glm4, mistral, ...) dump the spec as JSON and render every spec.
    The test runs LLaMA-Factory's own formatter on every BFCL spec and on each of these cases."""
    function = parse_spec(text)["function"]
    if function.get("type") == "function":  # it would take the spec's own "function" key
        function = function.get("function")
    params = function.get("parameters") if isinstance(function, dict) else None
    if not isinstance(params, dict) or not isinstance(params.get("properties"), dict):
        return DEFAULT_TOOL_FORMAT + "no parameters.properties object"
    if not isinstance(params.get("required", []), (list, str, dict)):
        return DEFAULT_TOOL_FORMAT + "parameters.required is not a list"
    for param in params["properties"].values():
        if not isinstance(param, dict):
            return DEFAULT_TOOL_FORMAT + "a property that is not an object"
        enum, items = param.get("enum"), param.get("items")
        if enum and not (isinstance(enum, (list, str, dict)) and all(isinstance(v, str) for v in enum)):
            return DEFAULT_TOOL_FORMAT + "an enum of values that are not all strings"
        if items and not isinstance(items, dict):
            return DEFAULT_TOOL_FORMAT + "an items that is not an object"
    return None


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise Unrepresentable("tool call arguments are not valid JSON") from None


def dataset_info(name: str, files: dict[str, str]) -> dict[str, Any]:
    """``dataset_info.json`` entries, one per split, for LLaMA-Factory's ``dataset_dir``. ``files``:
    each split's folder (``file_name`` is one path; LLaMA-Factory reads every file of a folder)."""
    return {
        f"{name}_{split}" if split != "train" else name: {
            "file_name": path, "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
        }
        for split, path in files.items()
    }


def features() -> Any:
    import datasets

    string = datasets.Value("string")
    return datasets.Features({"conversations": datasets.List({"from": string, "value": string}),
                              "system": string, "tools": string})


_ROLES = {"human": "user", "gpt": "assistant", "observation": "tool", "function_call": "assistant"}


def read_back(record: dict[str, Any]) -> ReadBack:
    """The conversation back in OpenAI roles, as LLaMA-Factory's template sees it."""
    messages = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    for turn in record["conversations"]:
        if turn["from"] == "function_call":
            calls = parsed(turn["value"])
            calls = calls if isinstance(calls, list) else [calls]
            messages.append({"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]})
        else:
            messages.append({"role": _ROLES[turn["from"]], "content": turn["value"]})
    specs = parsed(record.get("tools") or "[]")
    return messages, specs, False, specs


def _dataset_info_json(name: str, files: dict[str, str]) -> str:
    """``dataset_info.json`` beside the data, so ``dataset_dir`` points LLaMA-Factory at it."""
    return json.dumps(dataset_info(name, files), indent=2) + "\n"


FORMAT = Format("llama-factory", "jsonl", convert, "LLaMA-Factory sharegpt (+ ``dataset_info.json``)", features,
                side_files={"dataset_info.json": _dataset_info_json}, read_back=read_back, order=20,
                convert_frame=convert_frame, split_folders=True, tool_problem=tool_problem)
