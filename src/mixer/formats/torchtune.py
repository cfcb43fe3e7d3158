"""torchtune chat datasets: OpenAI-style ``messages``; tool specs folded into the system text.

torchtune's chat transforms ignore a ``tools`` field, so attached tools are written into the
system prompt as a tools block. Rows with tool-call or tool-result turns are rejected: its
OpenAI message converter has no such turns.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mixer.formats.common import (Format, ReadBack, Unrepresentable, lines_of, messages_json, plain_turns_refused,
                                  render_tools_block, require_answer, require_chat, system_with_tools, tools)


def convert(row: dict[str, Any]) -> dict[str, Any]:
    require_chat(row, "torchtune")
    require_answer(row, "torchtune")
    if any(m["role"] == "tool" or m.get("tool_calls") for m in row["messages"]):
        raise Unrepresentable("torchtune chat format has no tool-call or tool-result turns")
    system = row.get("system")
    specs = tools(row)
    if specs:
        block = render_tools_block(specs)
        system = block if system is None else f"{system}\n\n{block}"
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    return {"messages": messages}


def convert_frame(frame: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """The JSON lines :func:`convert` writes, built at once by Polars string expressions (the bytes
    of ``json.dumps(row, ensure_ascii=False)``, each distinct tool spec written once), and which
    rows they are: chats ending on an assistant turn, with user and assistant turns of string
    content only. The others are left to :func:`convert`."""
    converted = frame.select(
        ((pl.col("kind") == "chat")
         & (pl.col("messages").list.last().struct.field("role") == "assistant")
         & ~pl.col("messages").list.eval(plain_turns_refused()).list.any()).fill_null(False)).to_series()

    def line(rows: pl.DataFrame) -> pl.Expr:
        return pl.concat_str(messages_json(system_with_tools(rows, as_json=True)), pl.lit("}"))

    lines = lines_of(frame.filter(converted), line)
    return lines, converted


def features() -> Any:
    import datasets

    string = datasets.Value("string")
    return datasets.Features({"messages": datasets.List({"role": string, "content": string})})


def read_back(record: dict[str, Any]) -> ReadBack:
    """torchtune passes no tools: they are folded into the system text."""
    return record["messages"], None, False, []


FORMAT = Format("torchtune", "jsonl", convert, "torchtune chat datasets (tools folded into system)", features,
                read_back=read_back, order=40, convert_frame=convert_frame)
