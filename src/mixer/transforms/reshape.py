"""Transforms that change a row's shape, never the words of a kept turn.

- ``drop_system``: remove the system prompt (ablations, or before re-adding one).
- ``to_prompt``: drop the final assistant turn, giving prompt-only rows for RL.
- ``documents_to_chat``: wrap a document as the answer to a request from a template pool,
  for the document-vs-chat ablation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixer import schema
from mixer.errors import RecipeError
from mixer.pools import builtin_records
from mixer.pools.loading import parse_specs, read_entries
from mixer.transforms.rows import Draws, note, probability, uniforms

TITLE = "{title}"


def drop_system(frame: pl.DataFrame, *, p: float = 1.0, seed: int = 0, position: int = 0,
                base_dir: Path | None = None) -> pl.DataFrame:
    """With probability ``p``, remove a row's system prompt."""
    p = probability(p)
    has = frame.get_column("system").is_not_null().to_numpy()
    chosen = has & (uniforms(frame, seed, position, "drop_system") < p)
    out = frame.with_columns(system=pl.when(pl.Series(chosen)).then(None).otherwise(pl.col("system")))
    return note(out, chosen, f"aug.{position}.drop_system", pl.repeat("true", frame.height, eager=True))


def to_prompt(frame: pl.DataFrame, *, seed: int = 0, position: int = 0, base_dir: Path | None = None) -> pl.DataFrame:
    """Drop the final assistant turn of chats that end with one (prompt-only rows for RL)."""
    last_role = pl.col("messages").list.last().struct.field("role")
    ends = frame.select((pl.col("kind") == "chat") & (last_role == "assistant")).to_series().fill_null(False)
    out = frame.with_columns(
        messages=pl.when(pl.lit(ends)).then(pl.col("messages").list.head(pl.col("messages").list.len() - 1))
        .otherwise(pl.col("messages"))
    )
    return note(out, ends.to_numpy(), f"aug.{position}.to_prompt", pl.repeat("true", frame.height, eager=True))


def _requests(pool: Any, base_dir: Path | None) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    for spec in parse_specs(pool, "pool", base_dir, builtins=("builtin",)):
        if spec.path is None:
            entries += [(f"builtin:{r['id']}", r["text"]) for r in builtin_records("requests")]
        else:
            entries += [(i, v) for i, v in read_entries(spec, columns=("text", "request", "prompt"))
                        if isinstance(v, str) and v.strip()]
    if not entries:
        raise RecipeError("pool: no requests found")
    return entries


def documents_to_chat(frame: pl.DataFrame, *, pool: Any = "builtin", p: float = 1.0, seed: int = 0,
                      position: int = 0, base_dir: Path | None = None) -> pl.DataFrame:
    """With probability ``p``, turn a document into a chat: user request, assistant = the text.

    Requests containing ``{title}`` are used only for documents with a title in meta.
    """
    p = probability(p)
    entries = _requests(pool, base_dir)
    titled = np.array([k for k, (_, text) in enumerate(entries) if TITLE in text], dtype=np.int64)
    plain = np.array([k for k, (_, text) in enumerate(entries) if TITLE not in text], dtype=np.int64)
    plain = plain if len(plain) else np.arange(len(entries))
    title = frame.select(pl.col("meta").str.json_path_match("$.title")).to_series()
    has_title = title.is_not_null().to_numpy() & bool(len(titled))
    is_doc = (frame.get_column("kind") == "document").to_numpy()
    draws = Draws(frame, seed, position)
    chosen = is_doc & (draws.uniform("documents_to_chat") < p)
    u = draws.uniform("documents_to_chat.pick")

    def one_of(pool: np.ndarray) -> np.ndarray:
        return pool[np.minimum((u * len(pool)).astype(np.int64), len(pool) - 1)] if len(pool) else pool

    idx = np.where(has_title, one_of(titled) if len(titled) else 0, one_of(plain))
    request = pl.Series([text for _, text in entries]).gather(idx).str.replace_all(
        TITLE, title.fill_null(""), literal=True)
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
    label = pl.Series([json.dumps(ident) for ident, _ in entries]).gather(idx)
    return note(out, chosen, f"aug.{position}.documents_to_chat", label)
