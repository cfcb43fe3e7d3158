"""``filter``: keep rows by token length, by patterns in one role's text, and a blocklist.

Rows dropped here are counted per transform in the manifest (bucket ``filtered``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from mixer import tokens
from mixer.errors import RecipeError
from mixer.transforms.rows import choice

ROLES = ("user", "assistant", "system", "any")


def _role_text(role: str) -> pl.Expr:
    """The text a pattern is matched against: one role's turns joined, or a document's text."""
    if role == "system":
        return pl.col("system").fill_null("")
    turns = pl.col("messages").list.eval(
        pl.element().struct.field("content") if role == "any"
        else pl.element().filter(pl.element().struct.field("role") == role).struct.field("content")
    ).list.join("\n")
    return pl.when(pl.col("kind") == "document").then(pl.col("text")).otherwise(turns).fill_null("")


def _regex(pattern: Any, name: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise RecipeError(f"{name}: expected a regular expression string, got {pattern!r}")
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except pl.exceptions.PolarsError as exc:
        raise RecipeError(f"{name}: invalid regular expression {pattern!r}: {str(exc).splitlines()[0]}") from None
    return pattern


@dataclass(frozen=True)
class PreparedFilter:
    """Checked options and the resolved tokenizer; :meth:`apply` is row-local."""

    keep: pl.Expr
    min_tokens: int | None
    max_tokens: int | None
    encoding: Any = field(repr=False)

    @property
    def info(self) -> dict[str, Any]:
        return {}

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        out = frame.filter(self.keep)
        if self.min_tokens is not None or self.max_tokens is not None:
            counted = tokens.count(out, self.encoding).get_column("n_tokens")
            low = 0 if self.min_tokens is None else self.min_tokens
            high = 2**32 - 1 if self.max_tokens is None else min(self.max_tokens, 2**32 - 1)
            out = out.filter((counted >= low) & (counted <= high))
        return out


def prepare_filter(*, min_tokens: int | None = None, max_tokens: int | None = None, include: str | None = None,
                   exclude: str | None = None, role: str = "user", blocklist: list[str] | None = None,
                   encoding: Any = None, seed: int = 0, position: int = 0,
                   base_dir: Path | None = None) -> PreparedFilter:
    """Keep rows with ``min_tokens <= n_tokens <= max_tokens`` whose ``role`` text matches
    ``include`` and not ``exclude`` (regexes) and contains none of ``blocklist`` (case-insensitive)."""
    role = choice(role, "role", ROLES)
    for name, value in (("min_tokens", min_tokens), ("max_tokens", max_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise RecipeError(f"{name}: expected a whole number >= 0, got {value!r}")
    if min_tokens is not None and max_tokens is not None and min_tokens > max_tokens:
        raise RecipeError(f"min_tokens = {min_tokens} is above max_tokens = {max_tokens}: no row could pass")
    if blocklist is not None and (not isinstance(blocklist, list) or not all(isinstance(b, str) and b for b in blocklist)):
        raise RecipeError(f"blocklist: expected a list of non-empty strings, got {blocklist!r}")
    keep = pl.lit(True)
    text = _role_text(role)
    if include is not None:
        keep &= text.str.contains(_regex(include, "include"))
    if exclude is not None:
        keep &= ~text.str.contains(_regex(exclude, "exclude"))
    if blocklist:
        keep &= ~text.str.contains_any(blocklist, ascii_case_insensitive=True)
    needs_tokens = min_tokens is not None or max_tokens is not None
    enc = (encoding or tokens.encoding("cl100k_base")) if needs_tokens else None
    return PreparedFilter(keep, min_tokens, max_tokens, enc)


TRANSFORMS = {"filter": prepare_filter}  # recipe name -> prepare step (found by mixer.transforms)
