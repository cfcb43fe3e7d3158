"""mixer's own rows (a canonical output read back): kind, system, turns and tools as stored."""

from __future__ import annotations

from typing import Any

from mixer.specs import Source
from mixer.sources.adapters import Row, RowError
from mixer.sources.formats import InputFormat, document, openai


def canonical(record: dict[str, Any], source: Source) -> Row:
    """mixer's own rows (a canonical output read back): kind, system, turns and tools as stored."""
    if record.get("kind") == "document":
        return document.document({**record, source.text_field: record.get("text")}, source)
    row = openai.openai({"messages": record.get("messages"), "tools": record.get("tools")}, source)
    if record.get("system") is not None:
        if not isinstance(record["system"], str):
            raise RowError("system must be a string")
        row["system"] = record["system"] if row["system"] is None else f"{record['system']}\n\n{row['system']}"
    return row


_COLUMNS = {"id", "source", "kind", "system", "messages", "tools", "text", "meta"}

FORMAT = InputFormat("canonical", canonical, "mixer's columns",
                     lambda columns, source: _COLUMNS <= columns, order=0, kinds=("chat", "document"))
