"""RL trainers (TRL GRPO / RLOO style): a conversational ``prompt`` with the tools in it, plus ``tools``.

The prompt is the system prompt and every turn up to, not including, the last assistant turn
(every turn, when the row already ends on a user or tool turn).

The row's tool specs are folded into the system turn as the documented tools block
(:func:`mixer.formats.common.render_tools_block`), because that is the only place an RL trainer
renders them by default: TRL 1.16 renders GRPO prompts with ``apply_chat_template(prompts,
tools=self.tools or None)``, where ``self.tools`` are the trainer's own callables, and RLOO passes no
tools at all (trl/trainer/grpo_trainer.py and rloo_trainer.py, the prompt tokenization step);
a dataset's ``tools`` column only reaches the reward functions as a keyword argument. The
``tools`` column is kept, for reward functions and for trainers that do render it; do not pass
it to a template as well, or the model sees the tools twice.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mixer.formats import trl
from mixer.formats.common import (Format, ReadBack, Unrepresentable, has_json_feature, parsed, present,
                                  render_tools_block, require_chat, system_with_tools, tools)


def convert(row: dict[str, Any]) -> dict[str, Any]:
    require_chat(row, "prompt")
    converted = trl.conversation(row)
    messages = converted["messages"]
    if messages and messages[-1]["role"] != "assistant":
        prompt = messages  # already a prompt (prompt input, to_prompt): every turn stays
    else:
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
        prompt = messages[:last]
    if not prompt or prompt[-1]["role"] not in ("user", "tool"):
        raise Unrepresentable("no user turn before the last assistant turn to use as a prompt")
    specs = tools(row)  # the converted column may be JSON text (datasets < 4.7); fold from the row
    if specs:
        block = render_tools_block(specs)
        if prompt[0]["role"] == "system":
            prompt[0] = {**prompt[0], "content": f"{prompt[0]['content']}\n\n{block}"}
        else:
            prompt.insert(0, {"role": "system", "content": block, "tool_calls": None, "tool_call_id": None,
                              "name": None})
    return {"prompt": prompt, "tools": converted["tools"]}


def convert_frame(frame: pl.DataFrame) -> tuple[Any, pl.Series] | None:
    """The rows :func:`convert` writes, converted at once into an Arrow table in :func:`features`
    (each distinct tool spec written into tools blocks once), and which rows those are: chats
    whose prompt ends on a user or tool turn. None (row by row) where ``datasets`` has no ``Json``,
    as for ``trl``."""
    if not has_json_feature():
        return None
    turns = pl.col("messages")
    keep = turns.list.len() - (turns.list.last().struct.field("role") == "assistant").cast(pl.UInt32)
    last = turns.list.get(keep.cast(pl.Int64) - 1, null_on_oob=True).struct.field("role")
    converted = frame.select(((pl.col("kind") == "chat") & last.is_in(["user", "tool"])).fill_null(False)).to_series()
    rows = frame.filter(converted).with_columns(turns.list.head(keep))
    # a slice at a time: each prompt holds its own copy of its tools block (500k rows: 5.2 -> 3.9 GB)
    return trl.tables(rows, lambda part: {"prompt": trl.messages_of(part, system_with_tools(part)),
                                          "tools": trl.tools_of(part)}, features()), converted


def features() -> Any:
    import datasets

    base = trl.features()
    return datasets.Features({"prompt": base["messages"], "tools": base["tools"]})


def read_back(record: dict[str, Any]) -> ReadBack:
    """GRPO/RLOO render the prompt with a generation prompt and no ``tools=`` argument (the tools
    are in the system turn); the column still says which tools the row carries."""
    return present(record["prompt"]), None, True, [parsed(t) for t in parsed(record.get("tools")) or []]


FORMAT = Format("prompt", "parquet", convert, "RL trainers (TRL GRPO/RLOO): conversational ``prompt`` + ``tools``",
                features, read_back=read_back, prompts=True, order=60, convert_frame=convert_frame)
