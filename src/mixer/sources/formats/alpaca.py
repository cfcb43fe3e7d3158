"""Alpaca input: ``instruction`` + optional ``input`` -> user, ``output`` -> assistant, optional ``history``."""

from __future__ import annotations

from typing import Any

from mixer.specs import Source
from mixer.sources.adapters import Row, RowError, finish_chat, maybe_json, turn
from mixer.sources.formats import InputFormat


def alpaca(record: dict[str, Any], source: Source) -> Row:
    """Alpaca: ``instruction`` + optional ``input`` -> user, ``output`` -> assistant."""
    instruction = record.get("instruction")
    output = record.get("output")
    if not isinstance(instruction, str) or not isinstance(output, str):
        raise RowError("alpaca rows need string instruction and output fields")
    extra = record.get("input")
    user = instruction if not extra else f"{instruction}\n\n{extra}"
    turns: list[dict[str, Any]] = []
    history = maybe_json(record.get("history"), "history") or []
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise RowError("expected a [user, assistant] pair of strings", f"history[{i}]")
        turns += [turn("user", pair[0]), turn("assistant", pair[1])]
    turns += [turn("user", user), turn("assistant", output)]
    system = record.get("system")
    return finish_chat([system] if isinstance(system, str) and system else [], turns, [], {})


FORMAT = InputFormat("alpaca", alpaca, "instruction+output",
                     lambda columns, source: {"instruction", "output"} <= columns, order=30,
                     batch=True)
