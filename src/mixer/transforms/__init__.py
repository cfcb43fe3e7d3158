"""Transforms: pure, row-local functions ``DataFrame -> DataFrame`` on canonical rows.

Recipes name them in ``[[sources.NAME.transforms]]`` tables (``type = "..."`` plus the
transform's options); library users import and call them directly. Each registered
transform takes ``(frame, *, seed, position, **options)`` and draws its randomness only
through :mod:`mixer.rng` from (seed, position, row content key, repeat index).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import polars as pl

from mixer import schema
from mixer.errors import RecipeError

Transform = Callable[..., pl.DataFrame]

REGISTRY: dict[str, Transform] = {}


def apply(frame: pl.DataFrame, specs: tuple[dict[str, Any], ...], *, seed: int, source: str) -> pl.DataFrame:
    """Run a source's transforms in recipe order."""
    for position, spec in enumerate(specs):
        options = dict(spec)
        name = options.pop("type")
        fn = REGISTRY.get(name)
        if fn is None:
            close = difflib.get_close_matches(str(name), list(REGISTRY), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else (
                f" (known: {', '.join(sorted(REGISTRY))})" if REGISTRY else " (no transforms are available)")
            raise RecipeError(f"sources.{source}.transforms[{position}].type: unknown transform {name!r}{hint}")
        try:
            frame = fn(frame, seed=seed, position=position, **options)
        except TypeError as exc:
            raise RecipeError(f"sources.{source}.transforms[{position}] ({name}): {exc}") from None
        schema.check(frame, f"transform {name!r} of source {source!r}")
    return frame
