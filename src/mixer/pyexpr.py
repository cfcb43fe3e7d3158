"""Polars expressions that give exactly what Python's own ``str`` and ``json`` functions give.

Batch paths (the JSON Lines reader, the OpenAI export) must write the bytes their row-by-row
Python paths write; these are the pieces they share, each tested against Python itself.
"""

from __future__ import annotations

import polars as pl


def json_string(expr: pl.Expr) -> pl.Expr:
    """``json.dumps(value, ensure_ascii=False)`` of a string column, quotes included (serde_json
    escapes the same characters the same way: quote, backslash, control characters)."""
    encoded = pl.struct(expr.alias("s")).struct.json_encode()
    return encoded.str.slice(5, encoded.str.len_chars() - 6)


def blank(expr: pl.Expr) -> pl.Expr:
    """Python's ``not s.strip()``: empty after removing Unicode whitespace and \\x1c-\\x1f."""
    return ~expr.str.contains(r"[^\s\x1c-\x1f]")
