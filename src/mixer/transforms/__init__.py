"""Transforms: pure, row-local functions ``DataFrame -> DataFrame`` on canonical rows.

Recipes name them in ``[[sources.NAME.transforms]]`` tables (``type = "..."`` plus options);
library users call them directly, e.g.::

    mixer.transforms.tools(df, catalog="builtin", p=0.5, count=(1, 5), seed=0)

Each takes ``(frame, *, seed, position, base_dir, **options)`` and draws randomness only
through :mod:`mixer.rng` from (seed, position, row content key, repeat index), so a row gets
the same result whatever the batch, thread count or source order. A LazyFrame in gives a
LazyFrame out.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from mixer import schema
from mixer.errors import RecipeError
from mixer.transforms.filter import filter_rows
from mixer.transforms.reshape import documents_to_chat as _documents_to_chat
from mixer.transforms.reshape import drop_system as _drop_system
from mixer.transforms.reshape import to_prompt as _to_prompt
from mixer.transforms.system_prompt import system_prompt as _system_prompt
from mixer.transforms.tools import tools as _tools

Transform = Callable[..., pl.DataFrame]


def _lazy_aware(fn: Transform) -> Transform:
    """Let a DataFrame transform accept a LazyFrame too (collecting it, returning lazy)."""

    @functools.wraps(fn)
    def wrapper(frame: pl.DataFrame | pl.LazyFrame, **options: Any) -> Any:
        if isinstance(frame, pl.LazyFrame):
            return fn(frame.collect(), **options).lazy()
        return fn(frame, **options)

    return wrapper


system_prompt = _lazy_aware(_system_prompt)
tools = _lazy_aware(_tools)
drop_system = _lazy_aware(_drop_system)
to_prompt = _lazy_aware(_to_prompt)
documents_to_chat = _lazy_aware(_documents_to_chat)
filter = _lazy_aware(filter_rows)  # noqa: A001 - the recipe name

REGISTRY: dict[str, Transform] = {
    "system_prompt": _system_prompt,
    "tools": _tools,
    "drop_system": _drop_system,
    "to_prompt": _to_prompt,
    "documents_to_chat": _documents_to_chat,
    "filter": filter_rows,
}
_CONTEXT = {"seed", "position", "base_dir", "encoding"}


@dataclass(frozen=True)
class Step:
    """What one transform did to one source's rows, for the manifest."""

    position: int
    type: str
    rows_in: int
    rows_out: int
    augmented: int

    @property
    def label(self) -> str:
        return f"{self.position}:{self.type}"


def check_specs(specs: tuple[dict[str, Any], ...], source: str) -> None:
    """Fail on unknown transform types or options before any data is read."""
    for position, spec in enumerate(specs):
        where = f"sources.{source}.transforms[{position}]"
        name = spec.get("type")
        fn = REGISTRY.get(name)  # type: ignore[arg-type]
        if fn is None:
            close = difflib.get_close_matches(str(name), list(REGISTRY), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(REGISTRY))})"
            raise RecipeError(f"{where}.type: unknown transform {name!r}{hint}")
        allowed = [p for p in inspect.signature(fn).parameters if p not in _CONTEXT and p != "frame"
                   and not p.startswith("_")]
        for key in spec:
            if key != "type" and key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (options: {', '.join(allowed)})"
                raise RecipeError(f"{where}.{key}: unknown option for {name}{hint}")


def apply(frame: pl.DataFrame, specs: tuple[dict[str, Any], ...], *, seed: int, source: str,
          base_dir: Path | None = None, encoding: Any = None) -> tuple[pl.DataFrame, list[Step]]:
    """Run a source's transforms in recipe order; return the frame and what each step did."""
    check_specs(specs, source)
    steps = []
    for position, spec in enumerate(specs):
        options = {k: v for k, v in spec.items() if k != "type"}
        name = spec["type"]
        fn = REGISTRY[name]
        context: dict[str, Any] = {"seed": seed, "position": position, "base_dir": base_dir}
        if "encoding" in inspect.signature(fn).parameters:
            context["encoding"] = encoding
        before = frame.height
        try:
            frame = fn(frame, **context, **options)
        except RecipeError as exc:
            raise RecipeError(f"sources.{source}.transforms[{position}] ({name}): {exc}") from None
        schema.check(frame, f"transform {name!r} of source {source!r}")
        augmented = int(frame.get_column("meta").str.contains(f'"aug.{position}.', literal=True).sum())
        steps.append(Step(position, name, before, frame.height, augmented))
    return frame, steps
