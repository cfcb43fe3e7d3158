"""Train/validation split, per source, before any upsampling.

A row goes to validation when a seeded hash of its content key falls below the fraction,
so the split is stable across budgets and builds, and every repeat of a row later made by
selection stays on the side its original is on.
"""

from __future__ import annotations

import polars as pl

from mixer import rng


def split(frame: pl.DataFrame, fraction: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(train, validation)`` parts of one source's rows."""
    if fraction <= 0 or frame.is_empty():
        return frame, frame.clear()
    u = rng.uniform(rng.draw(rng.row_keys(frame.get_column("id")), rng.salt(seed, "split")))
    mask = pl.Series(u < fraction)
    return frame.filter(~mask), frame.filter(mask)
