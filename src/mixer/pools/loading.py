"""Shared pool-file plumbing: parse a pool spec from a recipe and read its entries.

A pool spec is ``"builtin"``, a path, or a table::

    {path = "...", column = "...", weight = 1.0, name = "...", max_chars = 8000,
     include = {type = "TEXT"}, exclude = {type = ["IMAGE", "VIDEO"]}}

and a list of them mixes several pools by weight. ``include``/``exclude`` keep or drop a
file's records by a column's value (one value or a list); ``max_chars`` skips entries longer
than that many characters (0: no cap). Every skipped entry is counted with its reason.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixer.errors import RecipeError
from mixer.sources.files import Unreadable, iter_records

#: Default cap on a pool entry, in characters of the entry as written (before slots are filled).
#: Characters, not tokens: the cap is known before any tokenizer loads, and which entries exist
#: (so which prompt a row draws) must not change when the recipe's tokenizer does. 8,000
#: characters is about 2,000 tokens of English (4 characters a token): long enough for a
#: detailed agent or policy prompt, short enough that one entry cannot swamp a row (a public
#: prompt collection has entries of 144,260 characters). CJK text runs closer to one token a
#: character; set ``max_chars`` per pool for such files.
MAX_CHARS = 8_000

_KEYS = ("path", "column", "weight", "name", "count", "max_chars", "include", "exclude")


@dataclass(frozen=True)
class PoolSpec:
    """One component of a pool option: where entries come from, its weight and its filters."""

    name: str  # "builtin", "generated", or a label for a file
    path: Path | None = None
    column: str | None = None
    weight: float = 1.0
    count: int | None = None  # for generated pools
    max_chars: int = MAX_CHARS  # 0: no cap
    include: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (column, accepted values as text)
    exclude: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Entry:
    """One pool entry: its id (for provenance), its value, and the record it came from."""

    ident: str
    value: Any
    record: dict[str, Any] = field(default_factory=dict)


class Skips(Counter):
    """Entries skipped while loading one pool component, by reason (``"over max_chars"``,
    ``"exclude type = IMAGE"``, ...)."""


def _as_text(value: Any) -> str:
    """How a record value compares with a filter value: TOML ``true`` matches CSV ``True``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower() if str(value).lower() in ("true", "false") else str(value)


def _row_filter(value: Any, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        raise RecipeError(f"{where}: expected a table of column = value (or a list of values), "
                          f"e.g. {{type = \"IMAGE\"}}, got {value!r}")
    out = []
    for column, accepted in value.items():
        items = accepted if isinstance(accepted, list) else [accepted]
        if not items or not all(isinstance(v, (str, int, float, bool)) for v in items):
            raise RecipeError(f"{where}.{column}: expected a value or a list of values, got {accepted!r}")
        out.append((str(column), tuple(_as_text(v) for v in items)))
    return tuple(out)


def parse_specs(value: Any, option: str, base_dir: Path | None, *, builtins: tuple[str, ...]) -> list[PoolSpec]:
    """Normalize a pool option into PoolSpecs; paths resolve against ``base_dir``."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise RecipeError(f"{option}: give at least one pool, e.g. {option} = \"builtin\"")
    specs = []
    for i, item in enumerate(items):
        where = f"{option}[{i}]" if isinstance(value, list) else option
        if isinstance(item, str):
            item = {"name": item} if item in builtins else {"path": item}
        if not isinstance(item, dict):
            raise RecipeError(f"{where}: expected \"builtin\", a path, or a table with path = \"...\"")
        unknown = set(item) - set(_KEYS)
        if unknown:
            import difflib

            first = sorted(unknown)[0]
            close = difflib.get_close_matches(first, _KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RecipeError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}{hint}; "
                              f"expected {', '.join(_KEYS)}")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise RecipeError(f"{where}.weight: expected a number >= 0, got {weight!r}")
        count = item.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count <= 0):
            raise RecipeError(f"{where}.count: expected a whole number > 0, got {count!r}")
        max_chars = item.get("max_chars", MAX_CHARS)
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 0:
            raise RecipeError(f"{where}.max_chars: expected a whole number >= 0 (0: no cap), got {max_chars!r}")
        include = _row_filter(item.get("include"), f"{where}.include")
        exclude = _row_filter(item.get("exclude"), f"{where}.exclude")
        if "path" in item:
            if not isinstance(item["path"], str) or not item["path"]:
                raise RecipeError(f"{where}.path: expected a file path, got {item['path']!r}")
            path = Path(item["path"]).expanduser()
            path = path if path.is_absolute() else (base_dir or Path.cwd()) / path
            if not path.is_file():
                raise RecipeError(f"{where}: pool file {path} does not exist (paths are relative to the recipe)")
            column = item.get("column")
            if column is not None and (not isinstance(column, str) or not column):
                raise RecipeError(f"{where}.column: expected a column name, got {column!r}")
            if path.name.lower().endswith((".txt", ".txt.gz")) and (include or exclude):
                raise RecipeError(f"{where}: include/exclude need a file with columns; {path.name} is one entry a line")
            specs.append(PoolSpec(item.get("name", path.name), path.resolve(), column, float(weight),
                                  max_chars=max_chars, include=include, exclude=exclude))
        elif item.get("name") in builtins:
            specs.append(PoolSpec(item["name"], None, None, float(weight), count, max_chars, include, exclude))
        else:
            raise RecipeError(f"{where}: unknown pool {item.get('name')!r}; use one of "
                              f"{', '.join(builtins)} or path = \"...\"")
    if sum(s.weight for s in specs) <= 0:
        raise RecipeError(f"{option}: all pool weights are zero")
    return specs


def keep_record(spec: PoolSpec, record: dict[str, Any], where: str, skips: Skips) -> bool:
    """Apply the component's include/exclude filters to one record, counting what they drop.

    A filter on a column the record does not have is a recipe error: a typo must not silently
    keep (or drop) everything.
    """
    for label, rules in (("include", spec.include), ("exclude", spec.exclude)):
        for column, accepted in rules:
            if column not in record:
                raise RecipeError(f"{where}: {label} names column {column!r}, which the pool has not "
                                  f"(columns: {', '.join(sorted(map(str, record)))})")
            hit = _as_text(record[column]) in accepted
            if hit != (label == "include"):
                skips[f"{label} {column} = {_as_text(record[column])}" if label == "exclude"
                      else f"include {column}: not {' or '.join(accepted)}"] += 1
                return False
    return True


def cap(spec: PoolSpec, entries: Iterable[Entry], length: Any, skips: Skips) -> list[Entry]:
    """The entries whose ``length(entry)`` is within ``spec.max_chars``; the rest counted."""
    if not spec.max_chars:
        return list(entries)
    out = []
    for entry in entries:
        if length(entry) > spec.max_chars:
            skips[f"over max_chars = {spec.max_chars}"] += 1
        else:
            out.append(entry)
    return out


def filter_records(spec: PoolSpec, records: Iterable[tuple[str, dict[str, Any]]], skips: Skips) -> list[dict[str, Any]]:
    """Built-in records through the component's include/exclude filters."""
    return [record for where, record in records if keep_record(spec, record, where, skips)]


def read_entries(spec: PoolSpec, *, columns: tuple[str, ...], skips: Skips | None = None) -> list[Entry]:
    """Entries from a pool file, after the component's include/exclude filters.

    ``.txt`` files hold one entry per line. Other files are read like sources; the value is
    the ``column`` given, else the first of ``columns`` present (or the whole record when
    ``columns`` is empty).
    """
    assert spec.path is not None
    skips = Skips() if skips is None else skips
    label = spec.name
    name = spec.path.name.lower()
    if name.endswith((".txt", ".txt.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(spec.path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
            return [Entry(f"{label}:{i}", line.rstrip("\n")) for i, line in enumerate(fh, start=1) if line.strip()]
    out = []
    seen = 0
    for item in iter_records([spec.path], spec.path.parent):
        where = f"{spec.path}:{item.line}"
        if isinstance(item.record, Unreadable):
            raise RecipeError(f"{where}: {item.record.message}")
        record = item.record
        seen += 1
        if not keep_record(spec, record, where, skips):
            continue
        if not columns:
            value = record
        else:
            wanted = [spec.column] if spec.column else list(columns)
            found = next((c for c in wanted if c in record), None)
            if found is None:
                raise RecipeError(f"{where}: no column {' or '.join(map(repr, wanted))} "
                                  f"(columns: {', '.join(sorted(record))}); set column = \"...\"")
            value = record[found]
        ident = record.get("id") or record.get("tool_id")
        out.append(Entry(f"{label}:{ident}" if ident is not None else f"{label}:{item.line}", value, record))
    if not seen:
        raise RecipeError(f"{spec.path}: the pool file has no entries")
    if not out:
        raise RecipeError(f"{spec.path}: include/exclude left no entries ({dict(skips)})")
    return out
