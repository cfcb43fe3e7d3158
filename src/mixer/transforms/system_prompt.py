"""``system_prompt``: give chat rows a system prompt drawn from one or more pools.

The system prompt is its own column, so this is a column gather: user and assistant turns
are untouched by construction.

Prompts that impose a constraint on the answer (tags such as ``format:json``,
``language:de``, ``length:sentences<=3``; see :mod:`mixer.pools.tags`) go by default only to
rows whose kept answer meets it, so the data never shows an answer ignoring its system
prompt. Rows without a final assistant turn (prompt-only rows for RL) may draw any prompt.
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
from mixer.pools import tags as tags_mod
from mixer.pools.prompts import PromptBank, Selection, load_bank
from mixer.transforms.rows import Draws, choice, distinct, note, pick, probability

MODES = ("if_absent", "replace", "prepend", "append")
CONSTRAINTS = ("compatible", "any")


def _names(value: Any, option: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise RecipeError(f"{option}: expected a list of names, got {value!r}")
    return tuple(items)


@dataclass(frozen=True)
class PreparedSystemPrompt:
    """The bank and sampling tables, built once per build; :meth:`apply` is row-local."""

    bank: PromptBank
    p: float
    mode: str
    separator: str
    constraints: str
    seed: int
    position: int
    _texts: pl.Series = field(repr=False)
    _ids: pl.Series = field(repr=False)
    _group_of: np.ndarray = field(repr=False)  # bank index -> index into _groups
    _groups: list[tuple[str, ...]] = field(repr=False)  # distinct tag sets
    _tagged: np.ndarray = field(repr=False)  # bank index -> has any tag

    @property
    def info(self) -> dict[str, Any]:
        return {"pool": self.bank.report, "prompts": len(self.bank)}

    def _allowed_picks(self, frame: pl.DataFrame, chosen: np.ndarray, idx: np.ndarray, draws: Draws) -> None:
        """Redraw, in place, the picks of rows whose kept answer breaks the drawn prompt's tags.

        Rejection sampling, so only rows that drew a tagged prompt are checked: a row keeps
        its draw when the answer meets every tag of it; otherwise it draws again (a fresh
        uniform) from the prompts whose tags the answer meets, renormalized. Either way a row
        ends with a draw from the bank restricted to what its answer meets.
        """
        tagged = self._tagged[idx] & chosen
        if not tagged.any():
            return
        last = pl.col("messages").list.last()
        answered = frame.select(
            (pl.col("kind") == "chat") & (last.struct.field("role") == "assistant")
        ).to_series().fill_null(False).to_numpy()
        rows = np.flatnonzero(tagged & answered)
        if not len(rows):
            return
        answers = frame.select(last.struct.field("content").fill_null("")).to_series().gather(rows)
        texts, inverse = distinct(answers)  # the tag checks are regexes: once per distinct answer
        met = {tag: got[inverse] for tag, got in
               tags_mod.satisfied_all({t for g in self._groups for t in g}, texts).items()}
        ok = np.ones((len(rows), len(self._groups)), dtype=bool)
        for g, group in enumerate(self._groups):
            for tag in group:
                ok[:, g] &= met[tag]
        rejected = ~ok[np.arange(len(rows)), self._group_of[idx[rows]]]
        if not rejected.any():
            return
        again = rows[rejected]
        u = draws.uniform("system_prompt.repick", rows=again)
        patterns, inverse = _patterns(ok[rejected])
        for k, pattern in enumerate(patterns):
            members = inverse.reshape(-1) == k
            probs = np.where(pattern[self._group_of], self.bank.probs, 0.0)
            if probs.sum() <= 0:  # the pool has nothing this answer meets: leave the row as it is
                chosen[again[members]] = False
                continue
            idx[again[members]] = pick(np.cumsum(probs / probs.sum()), u[members])

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        if frame.is_empty():
            return frame
        frame = schema.aligned(frame)  # see there: new columns are cut like the frame's
        eligible = (frame.get_column("kind") == "chat").to_numpy()
        if self.mode == "if_absent":
            eligible &= frame.get_column("system").is_null().to_numpy()
        draws = Draws(frame, self.seed, self.position)
        chosen = eligible & (draws.uniform("system_prompt.apply") < self.p)
        idx = pick(np.cumsum(self.bank.probs), draws.uniform("system_prompt.pick"))
        if self.constraints == "compatible" and any(self._groups):
            self._allowed_picks(frame, chosen, idx, draws)
        new = self._texts.gather(idx)
        if frame.get_column("system").null_count() == frame.height:
            # no row has a system prompt yet: in every mode a chosen row gets the drawn one
            out = schema.with_columns(frame, new.set(pl.Series(~chosen), None).alias("system"))
        else:
            old = pl.col("system")
            combined = {
                "if_absent": pl.lit(new), "replace": pl.lit(new),
                "prepend": pl.when(old.is_null()).then(pl.lit(new)).otherwise(pl.lit(new) + self.separator + old),
                "append": pl.when(old.is_null()).then(pl.lit(new)).otherwise(old + self.separator + pl.lit(new)),
            }[self.mode]
            out = schema.with_columns(frame, frame.select(
                system=pl.when(pl.Series(chosen)).then(combined).otherwise(old)).to_series())
        return note(out, chosen, f"aug.{self.position}.system_prompt", self._ids.gather(idx))


def _patterns(ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a boolean matrix and each row's index among them (like
    ``np.unique(axis=0)``, which sorts the rows as bytes: slow on many rows); the rows are
    packed into integers first when they fit in 64 bits."""
    if ok.shape[1] > 64:
        patterns, inverse = np.unique(ok, axis=0, return_inverse=True)
        return patterns, inverse.reshape(-1)
    keys = ok.astype(np.uint64) @ (np.uint64(1) << np.arange(ok.shape[1], dtype=np.uint64))
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return ok[first], inverse.reshape(-1)


def prepare_system_prompt(*, pool: Any = "builtin", p: float = 1.0, mode: str = "if_absent",
                          locale: str = "en_US", variants: int = 16, separator: str = "\n\n",
                          constraints: str = "compatible", styles: Any = None, exclude_styles: Any = None,
                          tags: Any = None, exclude_tags: Any = None, seed: int = 0, position: int = 0,
                          base_dir: Path | None = None) -> PreparedSystemPrompt:
    """With probability ``p``, set a chat row's system prompt from ``pool``.

    ``mode``: ``if_absent`` (only rows without one), ``replace``, ``prepend`` or ``append``
    (joined to the existing prompt with ``separator``). Pool entries may be templates with
    ``{company}``-style slots, filled by Faker in ``locale`` (``{{company}}`` is a literal
    ``{company}``); each template is rendered into ``variants`` concrete prompts per build.

    ``constraints``: ``compatible`` (default) gives a row whose final turn is a kept assistant
    answer only prompts whose constraint tags that answer meets; ``any`` ignores tags.
    ``styles``/``exclude_styles`` and ``tags``/``exclude_tags`` (a tag such as
    ``format:json`` or a kind such as ``language``) choose which entries are used at all.
    """
    p = probability(p)
    mode = choice(mode, "mode", MODES)
    constraints = choice(constraints, "constraints", CONSTRAINTS)
    if not isinstance(separator, str):
        raise RecipeError(f"separator: expected a string, got {separator!r}")
    select = Selection(
        styles=_names(styles, "styles") if styles is not None else (),
        exclude_styles=_names(exclude_styles, "exclude_styles") if exclude_styles is not None else (),
        tags=tuple(tags_mod.check_pattern(t, "tags") for t in _names(tags, "tags")) if tags is not None else (),
        exclude_tags=(tuple(tags_mod.check_pattern(t, "exclude_tags") for t in _names(exclude_tags, "exclude_tags"))
                      if exclude_tags is not None else ()),
    )
    bank = load_bank(pool, seed=seed, position=position, locale=locale, variants=variants, base_dir=base_dir,
                     select=select)
    groups = list(dict.fromkeys(bank.tags))
    index = {g: i for i, g in enumerate(groups)}
    return PreparedSystemPrompt(
        bank, p, mode, separator, constraints, seed, position,
        _texts=pl.Series(bank.texts, dtype=pl.String),
        _ids=pl.Series([json.dumps(i) for i in bank.ids], dtype=pl.String),
        _group_of=np.array([index[t] for t in bank.tags], dtype=np.int64),
        _groups=groups,
        _tagged=np.array([bool(t) for t in bank.tags], dtype=bool),
    )


TRANSFORMS = {"system_prompt": prepare_system_prompt}  # recipe name -> prepare step (found by mixer.transforms)
