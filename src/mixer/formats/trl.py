"""TRL SFTTrainer / axolotl ``chat_template``: ``messages`` + ``tools`` (JSON schemas).

Tool specs and tool calls are stored with the ``datasets`` ``Json`` feature: each is kept as
JSON in Parquet and decoded to the original dict, so schemas that differ across rows (the same
parameter a string in one spec and an object in another) load without Arrow type errors, and
chat templates get dicts (tool-call ``arguments`` included) as transformers expects. A row
without tools has ``tools = None``, not ``[]``: TRL's SFT passes the column to the template as
is, and Llama 3.1's template renders its tool boilerplate for ``tools=[]``.

With ``datasets`` < 4.7 (no ``Json``), ``tools`` (the whole list) and each turn's ``tool_calls``
are JSON text instead (:func:`mixer.formats.common.json_feature`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import polars as pl

from mixer.formats.common import (LINE_SLICE, Format, ReadBack, encode_json, has_json_feature, json_feature,
                                  openai_messages, own_arrays, parsed, present, require_answer, require_chat, tools)


def convert(row: dict[str, Any]) -> dict[str, Any]:
    require_chat(row, "trl")
    require_answer(row, "trl")
    return conversation(row)


def conversation(row: dict[str, Any]) -> dict[str, Any]:
    """The row's messages and tools in TRL's shape, whatever its last turn (the prompt format uses it too)."""
    as_text = has_json_feature()  # a Json value given as JSON text is stored as it is: no decode and re-encode
    messages = []
    for m in openai_messages(row):
        calls = _decoded(m.pop("tool_calls", []))
        messages.append({"role": m["role"], "content": m["content"],
                         "tool_calls": ([_json(c) for c in calls] or None) if as_text else encode_json(calls or None),
                         "tool_call_id": m.get("tool_call_id"), "name": m.get("name")})
    # the row's specs are JSON text already (canonical rows keep them so)
    return {"messages": messages, "tools": (list(row["tools"]) or None) if as_text else encode_json(tools(row) or None)}


def _decoded(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls with their ``arguments`` decoded, which chat templates expect as objects."""
    return [{**c, "function": {**c["function"], "arguments": _arguments(c["function"]["arguments"])}} for c in calls]


def _call_texts(stored: str) -> list[str] | None:
    """A turn's stored tool calls (canonical JSON text) as :func:`conversation` writes them: each
    call's JSON with its arguments decoded."""
    return [_json(c) for c in _decoded(json.loads(stored))] or None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def convert_frame(frame: pl.DataFrame) -> tuple[Any, pl.Series] | None:
    """The rows :func:`convert` writes, converted at once into an Arrow table in :func:`features`,
    and which rows those are (the others are refused: not a chat, or no final assistant turn).
    None (row by row) where ``datasets`` has no ``Json``. 500,000 rows: 1.9 s, against about 20 s
    converted and tabled row by row (and a list of half a million dicts in memory)."""
    if not has_json_feature():
        return None
    last_role = pl.col("messages").list.last().struct.field("role")
    converted = frame.select(((pl.col("kind") == "chat") & (last_role == "assistant")).fill_null(False)).to_series()
    return tables(frame.filter(converted), lambda part: {"messages": messages_of(part, pl.col("system")),
                                                         "tools": tools_of(part)}, features()), converted


def tables(rows: pl.DataFrame, columns: Callable[[pl.DataFrame], dict[str, pl.Series]], features: Any) -> Any:
    """The Arrow table (in ``features``) of ``columns`` of ``rows``, made :data:`LINE_SLICE` rows at
    a time, each slice gathered first: the exploded turns and their tool calls of a whole shard
    outweigh its table (100k rows that all call tools: 1.14 GB at once)."""
    import pyarrow as pa

    parts = [table(columns(part), features) for part in map(own_arrays, rows.iter_slices(LINE_SLICE))]
    return pa.concat_tables(parts) if parts else table(columns(rows), features)  # no rows: the empty table


def messages_of(rows: pl.DataFrame, system: pl.Expr) -> pl.Series:
    """Each row's turns (at least one a row) in TRL's message shape, after a system turn of
    ``system`` (an expression; null: none). A turn's tool calls are written by :func:`_call_texts`
    once per distinct stored text (calls are few beside the turns)."""
    # turns as rows, the system turn first, gathered back per row: concat_list of a struct and a
    # list of structs is a hundred times slower (500k rows: 6.3 s)
    rows = rows.with_row_index("_r")
    none, no_calls = pl.lit(None, pl.String), pl.lit(None, pl.List(pl.String))
    tool = pl.col("role") == "tool"
    turns = rows.select("_r", "messages").explode("messages").unnest("messages")
    stored = turns.get_column("tool_calls").drop_nulls().unique()
    stored = stored.filter(stored != "")
    if len(stored):
        calls = pl.DataFrame({"tool_calls": stored,
                              "_calls": pl.Series([_call_texts(t) for t in stored.to_list()], dtype=pl.List(pl.String))})
        turns = turns.join(calls, on="tool_calls", how="left", maintain_order="left")
    else:
        turns = turns.with_columns(_calls=no_calls)
    turns = turns.select(
        "_r", m=pl.struct(role="role", content="content", tool_calls="_calls",
                          tool_call_id=pl.when(tool).then("tool_call_id").otherwise(none),
                          name=pl.when(tool).then("name").otherwise(none)))
    first = rows.select("_r", _s=system).filter(pl.col("_s").is_not_null()).select(
        "_r", m=pl.struct(role=pl.lit("system"), content="_s", tool_calls=no_calls, tool_call_id=none, name=none))
    messages = pl.concat([first, turns]).sort("_r", maintain_order=True).group_by("_r", maintain_order=True).agg("m")
    return messages.get_column("m")


def tools_of(rows: pl.DataFrame) -> pl.Series:
    """The ``tools`` column: the rows' spec texts (stored as they are by ``Json``), null for none."""
    return rows.select(pl.when(pl.col("tools").list.len() > 0).then(pl.col("tools"))).to_series()


def table(columns: dict[str, pl.Series], features: Any) -> Any:
    """An Arrow table of ``columns`` in ``features`` (their ``Json`` types and metadata)."""
    schema = features.arrow_schema
    return pl.DataFrame(columns).to_arrow().cast(schema).replace_schema_metadata(schema.metadata)


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # not JSON: keep the string rather than lose it


def features() -> Any:
    import datasets

    # Json: a list of objects; without it, the list as one JSON text (what TRL decodes for tools)
    many = datasets.List(json_feature()) if has_json_feature() else json_feature()
    return datasets.Features({
        "messages": datasets.List({
            "role": datasets.Value("string"), "content": datasets.Value("string"),
            "tool_calls": many, "tool_call_id": datasets.Value("string"),
            "name": datasets.Value("string"),
        }),
        "tools": many,
    })


def read_back(record: dict[str, Any]) -> ReadBack:
    """TRL passes ``messages`` and ``tools`` to the template as they are."""
    specs = [parsed(t) for t in parsed(record.get("tools")) or []]
    return present(record["messages"]), specs, False, specs


FORMAT = Format("trl", "parquet", convert, "TRL SFTTrainer, axolotl ``chat_template``", features,
                read_back=read_back, order=10, convert_frame=convert_frame)
