"""Polars expressions that give exactly what Python's own ``str`` and ``json`` functions give.

Batch paths (the JSON Lines reader, the trainer-format exports) must write the bytes their row-by-row
Python paths write; these are the pieces they share, each tested against Python itself.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl


def json_string(expr: pl.Expr) -> pl.Expr:
    """``json.dumps(value, ensure_ascii=False)`` of a string column, quotes included (serde_json
    escapes the same characters the same way: quote, backslash, control characters)."""
    encoded = pl.struct(expr.alias("s")).struct.json_encode()
    return encoded.str.slice(5, encoded.str.len_chars() - 6)


def json_escaped(expr: pl.Expr) -> pl.Expr:
    """:func:`json_string` without its quotes (null stays null). Escaping goes character by character, so the
    escaped text of a concatenation is the concatenation of the escaped parts: a text repeated
    on many rows (a tools block) can be escaped once, in Python (:func:`escaped`), and joined."""
    encoded = pl.struct(expr.alias("s")).struct.json_encode()
    return pl.when(expr.is_not_null()).then(encoded.str.slice(6, encoded.str.len_chars() - 8))


def escaped(text: str) -> str:
    """``json.dumps(text, ensure_ascii=False)`` without its quotes: :func:`json_escaped` in Python."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def blank(expr: pl.Expr) -> pl.Expr:
    """Python's ``not s.strip()``: empty after removing Unicode whitespace and \\x1c-\\x1f."""
    return ~expr.str.contains(r"[^\s\x1c-\x1f]")


def utf8_buffer(texts: pl.Series) -> tuple[np.ndarray, memoryview]:
    """The strings' UTF-8 bytes (what ``str.encode`` gives) in one buffer, and the offsets that
    bound each one (``len(texts) + 1`` of them), read from Arrow without a Python string per row."""
    import pyarrow as pa

    array = texts.to_arrow()
    array = (array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array).cast(pa.large_string())
    _, offsets, data = array.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[array.offset:array.offset + len(array) + 1]
    return bounds, memoryview(data) if data is not None else memoryview(b"")
