"""torchtune chat datasets: OpenAI-style ``messages``; tool specs folded into the system text.

torchtune's chat transforms ignore a ``tools`` field, so attached tools are written into the
system prompt as a tools block. Rows with tool-call or tool-result turns are rejected: its
OpenAI message converter has no such turns.
"""

from __future__ import annotations

from typing import Any

from mixer.formats.common import Format, ReadBack, Unrepresentable, render_tools_block, require_answer, require_chat, tools


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


def features() -> Any:
    import datasets

    string = datasets.Value("string")
    return datasets.Features({"messages": datasets.List({"role": string, "content": string})})


def read_back(record: dict[str, Any]) -> ReadBack:
    """torchtune passes no tools: they are folded into the system text."""
    return record["messages"], None, False, []


FORMAT = Format("torchtune", "jsonl", convert, "torchtune chat datasets (tools folded into system)", features,
                read_back=read_back, order=40)
