"""RL trainers (TRL GRPO / RLOO style): a conversational ``prompt`` and the row's ``tools``.

The prompt is the system prompt and every turn up to, not including, the last assistant turn.
"""

from __future__ import annotations

from typing import Any

from mixer.formats import trl
from mixer.formats.common import Unrepresentable, require_chat


def convert(row: dict[str, Any]) -> dict[str, Any]:
    require_chat(row, "prompt")
    messages = trl.convert(row)["messages"]
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    prompt = messages[:last]
    if not prompt or prompt[-1]["role"] not in ("user", "tool"):
        raise Unrepresentable("no user turn before the last assistant turn to use as a prompt")
    return {"prompt": prompt, "tools": trl.convert(row)["tools"]}


def features() -> Any:
    import datasets

    base = trl.features()
    return datasets.Features({"prompt": base["messages"], "tools": base["tools"]})
