"""``irrelevance``: turn a tool-call demonstration into an irrelevance one.

The published recipe behind irrelevance-detection sets (BFCL's irrelevance category, APIGen's
and ToolACE's "no suitable function" rows): take a row whose assistant calls a tool, remove
the called tools from the row's tool list, and replace the call (and the tool results and
turns after it) with an answer that calls nothing, from a template pool. The model then sees
the same request with tools that cannot serve it and learns not to force a call.

Turns before the call are kept byte-identical; the original turns and the removed specs are
kept in ``meta`` (``aug.N.irrelevance``), so nothing is lost. Rows without a tool call pass
unchanged. Row-local and deterministic: the pick and the ``p`` draw come from the row's key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixer import schema
from mixer.errors import RecipeError
from mixer.pools import builtin_records
from mixer.pools.loading import Entry, Skips, cap, filter_records, parse_specs, read_entries
from mixer.transforms.rows import Draws, note, probability


@dataclass(frozen=True)
class PreparedIrrelevance:
    answers: list[str]
    ids: list[str]
    p: float
    seed: int
    position: int
    info: dict[str, Any] = field(default_factory=dict)

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        if frame.is_empty():
            return frame
        calls = frame.select(
            (pl.col("kind") == "chat")
            & pl.col("messages").list.eval(pl.element().struct.field("tool_calls").is_not_null()).list.any()
        ).to_series().fill_null(False).to_numpy()
        draws = Draws(frame, self.seed, self.position)
        chosen = calls & (draws.uniform("irrelevance.apply") < self.p)
        rows = np.flatnonzero(chosen)
        if not len(rows):
            return frame
        pick = np.minimum((draws.uniform("irrelevance.answer", rows=rows) * len(self.answers)).astype(np.int64),
                          len(self.answers) - 1)
        messages = frame.get_column("messages").to_list()
        tools = frame.get_column("tools").to_list()
        notes = [None] * frame.height
        for k, i in enumerate(rows.tolist()):
            turns = messages[i]
            at = next(j for j, m in enumerate(turns) if m["tool_calls"] is not None)
            called = {c["function"]["name"] for c in json.loads(turns[at]["tool_calls"])}
            kept_tools = [t for t in tools[i] if _name(t) not in called]
            answer = {"role": "assistant", "content": self.answers[pick[k]], "tool_calls": None,
                      "tool_call_id": None, "name": None}
            notes[i] = json.dumps({"answer": self.ids[pick[k]], "called": sorted(called),
                                   "removed_tools": [t for t in tools[i] if _name(t) in called],
                                   "original_turns": turns[at:]}, ensure_ascii=False)
            messages[i] = [*turns[:at], answer]
            tools[i] = kept_tools
        out = frame.with_columns(
            messages=pl.Series(messages, dtype=frame.schema["messages"]),
            tools=pl.Series(tools, dtype=frame.schema["tools"]),
        )
        return note(schema.check(out, "irrelevance"), chosen, f"aug.{self.position}.irrelevance",
                    pl.Series([n or "null" for n in notes], dtype=pl.String))


def _name(spec: str) -> str | None:
    try:
        fn = json.loads(spec).get("function") or {}
    except (ValueError, AttributeError):
        return None
    return fn.get("name") if isinstance(fn, dict) else None


def prepare_irrelevance(*, pool: Any = "builtin", p: float = 1.0, seed: int = 0, position: int = 0,
                        base_dir: Path | None = None) -> PreparedIrrelevance:
    """With probability ``p``, relabel a tool-calling row as an irrelevance example: the called
    tools removed, the call replaced by a no-call answer from ``pool`` (built-in: 8 answers;
    or files with a ``text`` column, like every pool)."""
    p = probability(p)
    answers: list[Entry] = []
    report: dict[str, dict[str, Any]] = {}
    for spec in parse_specs(pool, "pool", base_dir, builtins=("builtin",)):
        skips = Skips()
        if spec.path is None:
            records = filter_records(spec, ((f"builtin no-call answers {r['id']}", r)
                                            for r in builtin_records("no_call_answers")), skips)
            found = [Entry(f"builtin:{r['id']}", r["text"], r) for r in records]
        else:
            found = [e for e in read_entries(spec, columns=("text", "answer"), skips=skips)
                     if isinstance(e.value, str) and e.value.strip()]
        found = cap(spec, found, lambda e: len(e.value), skips)
        report[spec.name] = {"entries": len(found), "skipped": dict(sorted(skips.items()))}
        answers += found
    if not answers:
        raise RecipeError("pool: no no-call answers found")
    return PreparedIrrelevance([e.value for e in answers], [e.ident for e in answers], p, seed, position,
                               {"pool": report})


TRANSFORMS = {"irrelevance": prepare_irrelevance}  # recipe name -> prepare step (found by mixer.transforms)
