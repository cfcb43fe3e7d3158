"""Transforms that change a row's shape, never the words of a kept turn.

- ``drop_system``: remove the system prompt (ablations, or before re-adding one).
- ``to_prompt``: drop the final assistant turn, giving prompt-only rows for RL.
- ``documents_to_chat``: wrap a document as the answer to a request from a template pool,
  for the document-vs-chat ablation.
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
from mixer.transforms.rows import Draws, note, probability, uniforms

TITLE = "{title}"


@dataclass(frozen=True)
class PreparedDropSystem:
    p: float
    seed: int
    position: int
    info: dict[str, Any] = field(default_factory=dict)

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        has = frame.get_column("system").is_not_null().to_numpy()
        chosen = has & (uniforms(frame, self.seed, self.position, "drop_system") < self.p)
        out = frame.with_columns(system=pl.when(pl.Series(chosen)).then(None).otherwise(pl.col("system")))
        return note(out, chosen, f"aug.{self.position}.drop_system", pl.repeat("true", frame.height, eager=True))


def prepare_drop_system(*, p: float = 1.0, seed: int = 0, position: int = 0,
                        base_dir: Path | None = None) -> PreparedDropSystem:
    """With probability ``p``, remove a row's system prompt."""
    return PreparedDropSystem(probability(p), seed, position)


@dataclass(frozen=True)
class PreparedToPrompt:
    position: int
    info: dict[str, Any] = field(default_factory=dict)

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        last_role = pl.col("messages").list.last().struct.field("role")
        ends = frame.select((pl.col("kind") == "chat") & (last_role == "assistant")).to_series().fill_null(False)
        out = frame.with_columns(
            messages=pl.when(pl.lit(ends)).then(pl.col("messages").list.head(pl.col("messages").list.len() - 1))
            .otherwise(pl.col("messages"))
        )
        return note(out, ends.to_numpy(), f"aug.{self.position}.to_prompt", pl.repeat("true", frame.height, eager=True))


def prepare_to_prompt(*, seed: int = 0, position: int = 0, base_dir: Path | None = None) -> PreparedToPrompt:
    """Drop the final assistant turn of chats that end with one (prompt-only rows for RL)."""
    return PreparedToPrompt(position)


def _requests(pool: Any, base_dir: Path | None) -> tuple[list[tuple[str, str]], dict[str, dict[str, Any]]]:
    """The request entries (id, text) and, per pool component, how many were used or skipped."""
    entries: list[tuple[str, str]] = []
    report: dict[str, dict[str, Any]] = {}
    for spec in parse_specs(pool, "pool", base_dir, builtins=("builtin",)):
        skips = Skips()
        if spec.path is None:
            records = filter_records(spec, ((f"builtin requests {r['id']}", r) for r in builtin_records("requests")), skips)
            found = [Entry(f"builtin:{r['id']}", r["text"], r) for r in records]
        else:
            found = [e for e in read_entries(spec, columns=("text", "request", "prompt"), skips=skips)
                     if isinstance(e.value, str) and e.value.strip()]
        found = cap(spec, found, lambda e: len(e.value), skips)
        report[spec.name if spec.name not in report else f"{spec.name}#{len(report)}"] = {
            "entries": len(found), "skipped": dict(sorted(skips.items()))}
        entries += [(e.ident, e.value) for e in found]
    if not entries:
        raise RecipeError("pool: no requests found")
    return entries, report


@dataclass(frozen=True)
class PreparedDocumentsToChat:
    """The request pool split into titled and plain requests; :meth:`apply` is row-local."""

    p: float
    seed: int
    position: int
    report: dict[str, dict[str, Any]]
    _requests: pl.Series = field(repr=False)
    _labels: pl.Series = field(repr=False)
    _titled: np.ndarray = field(repr=False)
    _plain: np.ndarray = field(repr=False)

    @property
    def info(self) -> dict[str, Any]:
        return {"pool": self.report, "requests": len(self._requests)}

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        titled, plain = self._titled, self._plain
        title = frame.select(pl.col("meta").str.json_path_match("$.title")).to_series()
        has_title = title.is_not_null().to_numpy() & bool(len(titled))
        is_doc = (frame.get_column("kind") == "document").to_numpy()
        draws = Draws(frame, self.seed, self.position)
        chosen = is_doc & (draws.uniform("documents_to_chat") < self.p)
        u = draws.uniform("documents_to_chat.pick")

        def one_of(pool: np.ndarray) -> np.ndarray:
            return pool[np.minimum((u * len(pool)).astype(np.int64), len(pool) - 1)] if len(pool) else pool

        idx = np.where(has_title, one_of(titled) if len(titled) else 0, one_of(plain))
        request = self._requests.gather(idx).str.replace_all(TITLE, title.fill_null(""), literal=True)
        turns = pl.concat_list([
            pl.struct(role=pl.lit("user"), content=request, tool_calls=pl.lit(None, pl.String),
                      tool_call_id=pl.lit(None, pl.String), name=pl.lit(None, pl.String)),
            pl.struct(role=pl.lit("assistant"), content=pl.col("text"), tool_calls=pl.lit(None, pl.String),
                      tool_call_id=pl.lit(None, pl.String), name=pl.lit(None, pl.String)),
        ])
        mask = pl.lit(pl.Series(chosen))
        out = frame.with_columns(
            messages=pl.when(mask).then(turns).otherwise(pl.col("messages")),
            kind=pl.when(mask).then(pl.lit("chat")).otherwise(pl.col("kind")),
            text=pl.when(mask).then(None).otherwise(pl.col("text")),
        ).with_columns(messages=pl.col("messages").cast(pl.List(schema.MESSAGE)))
        return note(out, chosen, f"aug.{self.position}.documents_to_chat", self._labels.gather(idx))


def prepare_documents_to_chat(*, pool: Any = "builtin", p: float = 1.0, seed: int = 0, position: int = 0,
                              base_dir: Path | None = None) -> PreparedDocumentsToChat:
    """With probability ``p``, turn a document into a chat: user request, assistant = the text.

    Requests containing ``{title}`` are used only for documents with a title in meta.
    """
    p = probability(p)
    entries, report = _requests(pool, base_dir)
    titled = np.array([k for k, (_, text) in enumerate(entries) if TITLE in text], dtype=np.int64)
    plain = np.array([k for k, (_, text) in enumerate(entries) if TITLE not in text], dtype=np.int64)
    plain = plain if len(plain) else np.arange(len(entries))
    return PreparedDocumentsToChat(
        p, seed, position, report,
        _requests=pl.Series([text for _, text in entries], dtype=pl.String),
        _labels=pl.Series([json.dumps(ident) for ident, _ in entries], dtype=pl.String),
        _titled=titled, _plain=plain,
    )


# recipe name -> prepare step (found by mixer.transforms)
TRANSFORMS = {"drop_system": prepare_drop_system, "to_prompt": prepare_to_prompt,
              "documents_to_chat": prepare_documents_to_chat}
