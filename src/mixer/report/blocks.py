"""The pieces a report page is made of: sections holding tables, charts, notes and example rows.

A table cell that shows a number carries where it came from: ``key`` is a path into the
manifest (``sources/harmless/rows_selected``) or, starting with ``=``, a value derived from
it (``=flow/harmless/train_not_selected``), and ``value`` is the exact number. The page
writes both as ``data-`` attributes, so tests check every number shown against the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Cell:
    text: str
    key: str | None = None
    value: Any = None
    cls: str = ""


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    cls: str = ""
    kind: str = "table"


@dataclass
class Chart:
    svg: str
    caption: str = ""
    kind: str = "chart"


@dataclass
class Note:
    text: str
    kind: str = "note"


@dataclass
class Examples:
    rows: dict[str, list[dict[str, Any]]]
    kind: str = "examples"


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Any] = field(default_factory=list)
    scope: str = ""  # which manifest the keys of this section refer to ("" = the page's own)


def text(value: Any) -> Cell:
    return Cell("" if value is None else str(value))


def num(value: Any, key: str | None = None) -> Cell:
    if value is None:
        return Cell("—", key, None, "num")
    shown = f"{value:,}" if isinstance(value, int) else f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    return Cell(shown, key, value, "num")


def pct(value: float | None, key: str | None = None) -> Cell:
    return Cell("—" if value is None else f"{value:.1%}", key, value, "num")


def dec(value: float | None, key: str | None = None, digits: int = 2) -> Cell:
    return Cell("—" if value is None else f"{value:,.{digits}f}", key, value, "num")


def esc(part: Any) -> str:
    """One step of a cell key, escaped as in a JSON pointer (RFC 6901): ``~`` -> ``~0``, ``/`` -> ``~1``."""
    return str(part).replace("~", "~0").replace("/", "~1")
