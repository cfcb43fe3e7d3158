"""``system_prompt``: give chat rows a system prompt drawn from one or more pools.

The system prompt is its own column, so this is a column gather: user and assistant turns
are untouched by construction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixer.pools.prompts import load_bank
from mixer.transforms.rows import Draws, choice, note, pick, probability

MODES = ("if_absent", "replace", "prepend", "append")


def system_prompt(frame: pl.DataFrame, *, pool: Any = "builtin", p: float = 1.0, mode: str = "if_absent",
                  locale: str = "en_US", variants: int = 16, separator: str = "\n\n", seed: int = 0,
                  position: int = 0, base_dir: Path | None = None) -> pl.DataFrame:
    """With probability ``p``, set a chat row's system prompt from ``pool``.

    ``mode``: ``if_absent`` (only rows without one), ``replace``, ``prepend`` or ``append``
    (joined to the existing prompt with ``separator``). Pool entries may be templates with
    ``{company}``-style slots, filled by Faker in ``locale``; each template is rendered into
    ``variants`` concrete prompts per build.
    """
    p = probability(p)
    mode = choice(mode, "mode", MODES)
    bank = load_bank(pool, seed=seed, position=position, locale=locale, variants=variants, base_dir=base_dir)
    if frame.is_empty():
        return frame
    eligible = (frame.get_column("kind") == "chat").to_numpy()
    if mode == "if_absent":
        eligible &= frame.get_column("system").is_null().to_numpy()
    draws = Draws(frame, seed, position)
    chosen = eligible & (draws.uniform("system_prompt.apply") < p)
    idx = pick(np.cumsum(bank.probs), draws.uniform("system_prompt.pick"))
    new = pl.Series(bank.texts, dtype=pl.String).gather(idx)
    old = pl.col("system")
    combined = {
        "if_absent": pl.lit(new), "replace": pl.lit(new),
        "prepend": pl.when(old.is_null()).then(pl.lit(new)).otherwise(pl.lit(new) + separator + old),
        "append": pl.when(old.is_null()).then(pl.lit(new)).otherwise(old + separator + pl.lit(new)),
    }[mode]
    out = frame.with_columns(system=pl.when(pl.Series(chosen)).then(combined).otherwise(old))
    ids = pl.Series([json.dumps(i) for i in bank.ids], dtype=pl.String).gather(idx)
    return note(out, chosen, f"aug.{position}.system_prompt", ids)
