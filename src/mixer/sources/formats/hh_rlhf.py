"""Anthropic HH-RLHF input: a ``chosen`` (or ``rejected``) Human/Assistant transcript."""

from __future__ import annotations

import re
from typing import Any

from mixer.specs import Source
from mixer.sources.adapters import Row, RowError, finish_chat, turn
from mixer.sources.formats import InputFormat


_HH_SPLIT = re.compile(r"\n\n(Human|Assistant): ")


def hh_rlhf(record: dict[str, Any], source: Source) -> Row:
    """Anthropic HH-RLHF: a ``chosen`` or ``rejected`` "\\n\\nHuman: ... \\n\\nAssistant: ..." transcript.

    Two artifacts of the published data are repaired and recorded: consecutive turns by the
    same speaker are merged (joined by a blank line), and an empty final Assistant turn is
    removed.
    """
    transcript = record.get(source.side)
    if not isinstance(transcript, str):
        raise RowError(f"hh-rlhf rows need a string {source.side!r} field")
    parts = _HH_SPLIT.split(transcript)
    if parts[0].strip() or len(parts) < 3:
        raise RowError("transcript does not start with '\\n\\nHuman: '")
    repairs: list[str] = []
    turns: list[dict[str, Any]] = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        role = "user" if speaker == "Human" else "assistant"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + content
            repairs.append("merged consecutive turns")
        else:
            turns.append(turn(role, content))
    if len(turns) > 1 and turns[-1]["role"] == "assistant" and not turns[-1]["content"].strip():
        turns.pop()
        repairs.append("removed empty final turn")
    return finish_chat([], turns, [], {"repairs": repairs} if repairs else {})


FORMAT = InputFormat("hh-rlhf", hh_rlhf, "chosen/rejected",
                     lambda columns, source: source.side in columns and bool({"chosen", "rejected"} & columns), order=40,
                     batch=True)
