"""Input formats: each a module of this package that declares ``FORMAT`` (an :class:`InputFormat`).

A format's module holds its adapter (one raw record in, one canonical row out, or a
:class:`~mixer.sources.adapters.RowError`), the columns that identify it for auto-detection,
and whether the batch reader (:mod:`mixer.sources.fast`) reproduces it. This package finds
the modules itself, so adding an input format is adding one module (and its test): the recipe's
``format`` choices, ``mixer convert --from``, detection and its error message all come from here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mixer.specs import Source

Adapter = Callable[[dict[str, Any], Source], dict[str, Any]]


@dataclass(frozen=True)
class InputFormat:
    """One input format: its adapter and how auto-detection recognises it."""

    name: str
    adapt: Adapter
    expects: str  # the columns that identify it, for messages; may name {text_field}, {prompt_field}, {side}
    detect: Callable[[set[str], Source], bool]  # do these columns (of the first records) look like this format?
    order: int  # detection tries formats in this order: the first that fits wins
    kinds: tuple[str, ...] = ("chat",)  # the row kinds it makes (a source's ``kind`` must be one of them)
    batch: bool = False  # the batch JSON Lines reader reproduces this adapter (mixer.sources.fast)

    def describe(self, source: Source) -> str:
        """``expects (name)``, with the source's own column names filled in."""
        fields = {"text_field": source.text_field, "prompt_field": source.prompt_field, "side": source.side}
        return f"{self.expects.format(**fields)} ({self.name})"


def _discover() -> dict[str, InputFormat]:
    found: dict[str, InputFormat] = {}
    for info in pkgutil.iter_modules(__path__):
        declared = getattr(importlib.import_module(f"{__name__}.{info.name}"), "FORMAT", None)
        if isinstance(declared, InputFormat):
            found[declared.name] = declared
    return {f.name: f for f in sorted(found.values(), key=lambda f: (f.order, f.name))}


FORMATS: dict[str, InputFormat] = _discover()
NAMES: tuple[str, ...] = ("auto", *FORMATS)  # what a source's ``format`` (and ``convert --from``) accepts


def detect(columns: set[str], source: Source) -> str | None:
    """The first format (in detection order) that makes the source's ``kind`` of rows and whose
    columns the first records show; None when none fits."""
    for fmt in FORMATS.values():
        if (source.kind is None or source.kind in fmt.kinds) and fmt.detect(columns, source):
            return fmt.name
    return None


def expected(source: Source) -> str:
    """Every format's identifying columns, for a "cannot tell the format" message."""
    return ", ".join(f.describe(source) for f in FORMATS.values() if f.name != "canonical")
