"""Helpers every row-local transform shares: per-row draws, meta notes, list building.

Draws come from :mod:`mixer.rng` with (seed, transform position, purpose) as the salt and
the row's content key and repeat index as the input, so a row's augmentation is the same
whatever batch it is in, and each upsampled repeat gets its own.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa

from mixer import rng
from mixer.errors import RecipeError


def draws(frame: pl.DataFrame, seed: int, position: int, purpose: str) -> np.ndarray:
    """One uint64 per row for ``purpose``: independent across purposes, positions and repeats."""
    ids = frame.get_column("id")
    return rng.draw(rng.row_keys(ids), rng.salt(seed, position, purpose), rng.repeat_index(ids))


def uniforms(frame: pl.DataFrame, seed: int, position: int, purpose: str) -> np.ndarray:
    return rng.uniform(draws(frame, seed, position, purpose))


def pick(probs_cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices drawn from a categorical distribution given its CDF and uniforms."""
    return np.minimum(np.searchsorted(probs_cdf, u, side="right"), len(probs_cdf) - 1)


def note(frame: pl.DataFrame, mask: np.ndarray, key: str, values: pl.Series) -> pl.DataFrame:
    """Record ``key: value`` in the JSON ``meta`` of the rows in ``mask``.

    ``values`` holds JSON fragments (already serialized); the key is spliced in with string
    operations so no per-row JSON parsing happens.
    """
    frag = pl.lit(json.dumps(key) + ": ") + values
    meta = pl.col("meta")
    spliced = (
        pl.when(meta == "{}").then(pl.lit("{") + frag + pl.lit("}"))
        .otherwise(meta.str.head(-1) + pl.lit(", ") + frag + pl.lit("}"))
    )
    return frame.with_columns(meta=pl.when(pl.Series(mask)).then(spliced).otherwise(meta))


def probability(p: object, name: str = "p") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise RecipeError(f"{name}: expected a probability between 0 and 1, got {p!r}")
    return float(p)


def choice(value: object, name: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise RecipeError(f"{name}: expected one of {', '.join(options)}, got {value!r}")
    return str(value)


def empty_lists(n: int) -> pl.Series:
    """``n`` empty string lists, built without a Python list of lists."""
    empty = pa.LargeListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int64)), pa.array([], pa.large_string()))
    return pl.Series("x", empty).cast(pl.List(pl.String))


def extend_lists(existing: pl.Series, counts: np.ndarray, values: pa.Array) -> pl.Series:
    """Append ``counts[i]`` items of ``values`` (consecutive, in row order) to each list of ``existing``.

    Built with Arrow offsets and one ``take``, never a per-row Python loop.
    """
    old = existing.to_arrow()
    if isinstance(old, pa.ChunkedArray):
        old = old.combine_chunks()
    old = old.cast(pa.large_list(pa.large_string()))
    old_offsets = np.asarray(old.offsets, dtype=np.int64)
    old_len = np.diff(old_offsets)
    new_offsets = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    lengths = old_len + counts
    offsets = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
    total = int(offsets[-1])
    row_start = np.repeat(offsets[:-1], lengths)
    j = np.arange(total, dtype=np.int64) - row_start  # position within the row
    n_old = np.repeat(old_len, lengths)
    from_old = j < n_old
    base_old = old.values.cast(pa.large_string())
    idx = np.where(from_old, np.repeat(old_offsets[:-1], lengths) + j,
                   len(base_old) + np.repeat(new_offsets[:-1], lengths) + (j - n_old))
    pool = pa.concat_arrays([base_old, values.cast(pa.large_string())])
    taken = pool.take(pa.array(idx, type=pa.int64()))
    out = pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), taken)
    return pl.Series(existing.name, out).cast(pl.List(pl.String))
