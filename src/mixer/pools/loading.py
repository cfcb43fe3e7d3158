"""Shared pool-file plumbing: parse a pool spec from a recipe and read its entries.

A pool spec is ``"builtin"``, a path, or a table ``{path = "...", column = "...", weight = 1.0,
name = "..."}``; a list of them mixes several pools by weight.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixer.errors import RecipeError
from mixer.sources.files import Unreadable, iter_records


@dataclass(frozen=True)
class PoolSpec:
    """One component of a pool option: where entries come from and its relative weight."""

    name: str  # "builtin", "generated", or a label for a file
    path: Path | None = None
    column: str | None = None
    weight: float = 1.0
    count: int | None = None  # for generated pools


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
        unknown = set(item) - {"path", "column", "weight", "name", "count"}
        if unknown:
            raise RecipeError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                              "expected path, column, weight, name, count")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise RecipeError(f"{where}.weight: expected a number >= 0, got {weight!r}")
        count = item.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count <= 0):
            raise RecipeError(f"{where}.count: expected a whole number > 0, got {count!r}")
        if "path" in item:
            path = Path(item["path"]).expanduser()
            path = path if path.is_absolute() else (base_dir or Path.cwd()) / path
            if not path.is_file():
                raise RecipeError(f"{where}: pool file {path} does not exist (paths are relative to the recipe)")
            column = item.get("column")
            specs.append(PoolSpec(item.get("name", path.name), path.resolve(), column, float(weight)))
        elif item.get("name") in builtins:
            specs.append(PoolSpec(item["name"], None, None, float(weight), count))
        else:
            raise RecipeError(f"{where}: unknown pool {item.get('name')!r}; use one of "
                              f"{', '.join(builtins)} or path = \"...\"")
    if sum(s.weight for s in specs) <= 0:
        raise RecipeError(f"{option}: all pool weights are zero")
    return specs


def read_entries(spec: PoolSpec, *, columns: tuple[str, ...]) -> list[tuple[str, Any]]:
    """``(entry id, value)`` pairs from a pool file.

    ``.txt`` files hold one entry per line. Other files are read like sources; the value is
    the ``column`` given, else the first of ``columns`` present (or the whole record when
    ``columns`` is empty).
    """
    assert spec.path is not None
    label = spec.name
    name = spec.path.name.lower()
    if name.endswith((".txt", ".txt.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(spec.path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
            return [(f"{label}:{i}", line.rstrip("\n")) for i, line in enumerate(fh, start=1) if line.strip()]
    out = []
    for item in iter_records([spec.path], spec.path.parent):
        where = f"{spec.path}:{item.line}"
        if isinstance(item.record, Unreadable):
            raise RecipeError(f"{where}: {item.record.reason}")
        record = item.record
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
        out.append((f"{label}:{ident}" if ident is not None else f"{label}:{item.line}", value))
    if not out:
        raise RecipeError(f"{spec.path}: the pool file has no entries")
    return out
