"""Helpers every row-local transform shares: per-row draws, meta notes, list building.

Draws come from :mod:`mixer.rng` with (seed, transform position, purpose) as the salt and
the row's content key and repeat index as the input, so a row's augmentation is the same
whatever batch it is in, and each upsampled repeat gets its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import polars as pl

from mixer import rng
from mixer.schema import note as note, notes as notes  # re-exported: transforms record what they did in meta
from mixer.errors import RecipeError


_PARSED: ContextVar[list[tuple[pl.Series, np.ndarray, np.ndarray]] | None] = ContextVar("_PARSED", default=None)


@contextmanager
def shared_keys() -> Iterator[None]:
    """Within this block, transforms applied to the same ids parse them once (a chain of
    transforms on one chunk: :meth:`mixer.transforms.Prepared.apply`)."""
    token = _PARSED.set([])
    try:
        yield
    finally:
        _PARSED.reset(token)


class Draws:
    """Per-row random draws for one transform: the rows' content keys and repeat indices are
    parsed from the ids once, then each purpose is one vectorized hash."""

    def __init__(self, frame: pl.DataFrame, seed: int, position: int) -> None:
        ids = frame.get_column("id")
        parsed = _PARSED.get()
        hit = next((p for p in parsed or () if p[0].len() == ids.len() and p[0].equals(ids)), None)
        if hit is None:
            hit = (ids, rng.row_keys(ids), rng.repeat_index(ids))
            if parsed is not None:
                parsed[:] = [hit]  # the latest ids only: a filter upstream changes them
        self.keys, self.reps = hit[1], hit[2]
        self.seed, self.position = seed, position

    def uniform(self, purpose: str, index: int | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """Uniforms in [0, 1) for ``purpose`` (and ``index``), for all rows or the given ``rows``."""
        keys, reps = (self.keys, self.reps) if rows is None else (self.keys[rows], self.reps[rows])
        parts = (self.seed, self.position, purpose) if index is None else (self.seed, self.position, purpose, index)
        return rng.uniform(rng.draw(keys, rng.salt(*parts), reps))


def uniforms(frame: pl.DataFrame, seed: int, position: int, purpose: str) -> np.ndarray:
    """Uniforms for one purpose (see :class:`Draws` when a transform needs several)."""
    return Draws(frame, seed, position).uniform(purpose)


def pick(probs_cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices drawn from a categorical distribution given its CDF and uniforms: for each u the
    first index whose CDF value exceeds it (the last index if none does).

    Equal probabilities (the common case) take a multiply instead of a search. Otherwise a
    guide table (the answer at each of a power-of-two grid of points at least 4x the
    categories) gives each u a start at most a step or two short of its answer: a gather and
    a few comparisons instead of a binary search per u (1M draws from 880 prompts: 53 -> 9 ms).
    """
    n = len(probs_cdf)
    if n and np.allclose(probs_cdf, np.arange(1, n + 1) / n, rtol=0, atol=1e-12):
        return np.minimum((u * n).astype(np.int64), n - 1)
    if n == 0 or len(u) < 16 * n:  # the table would cost more than it saves
        return np.minimum(np.searchsorted(probs_cdf, u, side="right"), n - 1)
    size = 1 << (4 * n - 1).bit_length()
    # grid point k / size and u * size are exact in floating point (size is a power of two),
    # so a u in cell k is at least k / size and its answer at least the table's
    guide = np.minimum(np.searchsorted(probs_cdf, np.arange(size) / size, side="right"), n - 1)
    idx = guide[(u * size).astype(np.int64)]
    todo = np.flatnonzero((idx < n - 1) & (probs_cdf[idx] <= u))
    while len(todo):
        idx[todo] += 1
        todo = todo[(idx[todo] < n - 1) & (probs_cdf[idx[todo]] <= u[todo])]
    return idx


def distinct_rows(frame: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """The distinct rows of ``frame`` (in order of first appearance) and each row's index into
    them, so a per-row test that costs more than a hash (a regex, a tag check) runs once per
    distinct value: upsampled repeats and answers shared between rows are common."""
    groups = frame.with_row_index("_i").group_by(frame.columns, maintain_order=True).agg("_i")
    inverse = np.empty(frame.height, dtype=np.int64)
    inverse[groups.get_column("_i").explode().to_numpy()] = np.repeat(
        np.arange(groups.height, dtype=np.int64), groups.get_column("_i").list.len().to_numpy())
    return groups.drop("_i"), inverse


def distinct(texts: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """:func:`distinct_rows` of one column, or the column as it is (each row its own index)
    when a fixed sample of it shows almost no repeats: grouping costs a hash of every text,
    a loss when nothing repeats. Either way a per-text result mapped back is the same."""
    sample = texts.gather_every(max(1, len(texts) // 20_000))
    if sample.n_unique() >= 0.95 * len(sample):
        return texts, np.arange(len(texts))
    unique, inverse = distinct_rows(texts.to_frame())
    return unique.to_series(), inverse


def cores() -> int:
    """The cores this process may run on: how many threads a transform's parallel parts use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def probability(p: object, name: str = "p") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise RecipeError(f"{name}: expected a probability between 0 and 1, got {p!r}")
    return float(p)


def choice(value: object, name: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise RecipeError(f"{name}: expected one of {', '.join(options)}, got {value!r}")
    return str(value)


def empty_lists(n: int) -> pl.Series:
    """``n`` empty string lists."""
    return pl.repeat([], n, dtype=pl.List(pl.String), eager=True)


def extend_lists(existing: pl.Series, counts: np.ndarray, values: pl.Series) -> pl.Series:
    """Append ``counts[i]`` items of ``values`` (consecutive, rows in order) to each list of ``existing``.

    The new lists are ``values`` cut at the cumulative counts: an Arrow list array over the
    same string views, so a tool spec attached to 100k rows is not copied 100k times and no
    per-row work runs.
    """
    import pyarrow as pa

    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    items = values.cast(pl.String).to_arrow(compat_level=pl.CompatLevel.newest())
    # offsets from the numpy buffer, not pa.array(): that call imports pandas (~0.3 s per process)
    arrow_offsets = pa.Array.from_buffers(pa.int64(), len(offsets), [None, pa.py_buffer(offsets)])
    new = pl.Series(existing.name, pa.LargeListArray.from_arrays(arrow_offsets, items))
    if existing.list.len().max() or 0:
        new = pl.select(pl.concat_list(pl.lit(existing), pl.lit(new))).to_series()
    return new.alias(existing.name)
