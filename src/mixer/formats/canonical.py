"""mixer's own rows (the canonical schema), for chaining builds and inspection; no conversion.

Written as Parquet by default, or as JSON Lines with ``format = "jsonl"`` (``"parquet"`` is
the same as ``"canonical"``). Every mixer column stays, so a later build reads it back exactly.
"""

from __future__ import annotations

import json
from typing import Any

from mixer.formats.common import Format, ReadBack, parsed


def read_back(record: dict[str, Any]) -> ReadBack:
    messages: list[dict[str, Any]] = []
    if record.get("system") is not None:
        messages.append({"role": "system", "content": record["system"]})
    for m in record["messages"] or []:
        msg = {"role": m["role"], "content": m["content"]}
        if m.get("tool_calls"):
            msg["tool_calls"] = [
                {**c, "function": {**c["function"], "arguments": parsed(c["function"]["arguments"])}}
                for c in json.loads(m["tool_calls"])]
        messages.append(msg)
    tools = [json.loads(t) for t in record.get("tools") or []]
    return messages, tools, False, tools


FORMAT = Format("canonical", "parquet", None, "mixer's own schema (chaining builds, inspection)",
                aliases=("parquet", "jsonl"), read_back=read_back, order=0)
