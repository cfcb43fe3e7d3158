"""The canonical row: one Polars schema shared by every layer.

Readers produce it, transforms keep it, writers consume it. ``check`` is called at each
layer boundary so a bug shows up where it happens, not three steps later.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from mixer.errors import MixerError

#: One conversation turn. ``tool_calls`` is the OpenAI list serialized as a JSON string
#: (heterogeneous argument shapes never break Arrow typing); null when the turn has none.
MESSAGE = pl.Struct(
    {
        "role": pl.String,
        "content": pl.String,
        "tool_calls": pl.String,
        "tool_call_id": pl.String,
        "name": pl.String,
    }
)

SCHEMA = pl.Schema(
    {
        "id": pl.String,
        "source": pl.String,
        "kind": pl.String,
        "system": pl.String,
        "messages": pl.List(MESSAGE),
        "tools": pl.List(pl.String),
        "text": pl.String,
        "meta": pl.String,
        "n_tokens": pl.UInt32,
    }
)

COLUMNS = tuple(SCHEMA.names())
ROLES = ("user", "assistant", "tool")
KINDS = ("chat", "document")


def empty() -> pl.DataFrame:
    """A canonical frame with no rows."""
    return pl.DataFrame(schema=SCHEMA)


def check(df: pl.DataFrame, where: str) -> pl.DataFrame:
    """Fail loudly if ``df`` is not canonical; ``where`` names the layer for the message."""
    if df.schema != SCHEMA:
        got = dict(df.schema)
        diffs = [
            f"{name}: expected {dtype}, got {got.get(name, 'missing')}"
            for name, dtype in SCHEMA.items()
            if got.get(name) != dtype
        ]
        extra = sorted(set(got) - set(SCHEMA.names()))
        if extra:
            diffs.append(f"unexpected columns {extra}")
        if not diffs:
            diffs.append(f"column order {list(got)} != {list(COLUMNS)}")
        raise MixerError(f"internal: non-canonical frame after {where}: " + "; ".join(diffs))
    return df


def note(frame: pl.DataFrame, mask: np.ndarray, key: str, values: pl.Series | pl.Expr) -> pl.DataFrame:
    """Record ``key: value`` in the JSON ``meta`` of the rows in ``mask``.

    ``values`` holds JSON fragments (already serialized); the key is spliced in with string
    operations so no per-row JSON parsing happens.
    """
    return notes(frame, mask, [(key, values)])


def notes(frame: pl.DataFrame, mask: np.ndarray, entries: list[tuple[str, pl.Series | pl.Expr]]) -> pl.DataFrame:
    """Record several ``key: value`` pairs in the ``meta`` of the rows in ``mask``: the same text
    as :func:`note` for each in turn, written in one string concatenation per row."""
    parts: list[pl.Expr] = []
    for i, (key, values) in enumerate(entries):
        parts.append(pl.lit((", " if i else "") + json.dumps(key) + ": "))
        parts.append(values if isinstance(values, pl.Expr) else pl.lit(values))
    meta = pl.col("meta")
    spliced = pl.concat_str([meta.str.head(-1), pl.when(meta == "{}").then(pl.lit("")).otherwise(pl.lit(", ")),
                             *parts, pl.lit("}")])
    return with_columns(frame, frame.select(meta=pl.when(pl.Series(mask)).then(spliced).otherwise(meta)).to_series())


def _chunks(column: pl.Series) -> list[int]:
    return [chunk.len() for chunk in column.get_chunks()]


def aligned(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every column cut into the same chunks: as it is when they already are,
    else rechunked. Polars rechunks a frame whose columns are cut differently on every
    expression evaluated on it (at 1M rows, ~45 ms each, the nested ``messages`` column
    copied every time)."""
    if frame.width and len({tuple(_chunks(c)) for c in frame.iter_columns()}) > 1:
        return frame.rechunk()
    return frame


def with_columns(frame: pl.DataFrame, *columns: pl.Series) -> pl.DataFrame:
    """``frame.with_columns(columns)``, each new column cut into the frame's chunks (slices of
    it, no copy), so the frame stays :func:`aligned`."""
    lengths = _chunks(frame.get_column(frame.columns[0])) if frame.width else []
    if len(lengths) > 1:
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        columns = tuple(c if _chunks(c) == lengths else
                        pl.concat([c.slice(int(a), n) for a, n in zip(starts, lengths)], rechunk=False)
                        for c in columns)
    return frame.with_columns(columns)
