"""Source weights from a file: fitted mixture weights fed back into a build.

``mixer build RECIPE --weights FILE`` reads ``{"source": weight, ...}`` (JSON) or one row of a
sweep's ``ratios.csv`` (columns ``run, name, index``, one column per source, ``tokens``,
``rows``; pick the row with ``FILE:NAME`` or ``FILE:INDEX`` when there are several). The
weights become ``sources.NAME.weight`` overrides, validated like any other recipe key.
"""

from __future__ import annotations

import csv
import difflib
import json
from pathlib import Path
from typing import Any

from mixer.errors import RecipeError

_CSV_META = ("run", "name", "index", "tokens", "rows")


def read_weights(spec: str) -> dict[str, float]:
    """``spec`` is ``FILE`` or ``FILE:ROW`` (a CSV row's name or index)."""
    path, row = Path(spec), None
    if not path.is_file() and ":" in spec:
        head, row = spec.rsplit(":", 1)
        path = Path(head)
    if not path.is_file():
        raise RecipeError(f"--weights {spec}: no such file")
    if path.suffix.lower() == ".csv":
        return _from_csv(path, row)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecipeError(f"--weights {path}: not a JSON object of source weights ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("weights"), dict):
        data = data["weights"]
    if not isinstance(data, dict) or not data:
        raise RecipeError(f"--weights {path}: expected a JSON object like {{\"harmless\": 0.6, \"advice\": 0.4}}")
    return {str(k): _number(v, f"--weights {path}: {k}") for k, v in data.items()}


def _from_csv(path: Path, row: str | None) -> dict[str, float]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise RecipeError(f"--weights {path}: no rows")
    if row is None:
        if len(rows) > 1:
            names = ", ".join(r.get("name") or r.get("index") or "?" for r in rows[:5])
            raise RecipeError(f"--weights {path}: {len(rows)} rows; pick one as {path}:NAME or {path}:INDEX "
                              f"(names: {names}{', ...' if len(rows) > 5 else ''})")
        chosen = rows[0]
    else:
        matches = [r for r in rows if row in (r.get("name"), r.get("index"), r.get("run"))]
        if not matches:
            raise RecipeError(f"--weights {path}:{row}: no row named or numbered {row!r}")
        chosen = matches[0]
    return {k: _number(v, f"--weights {path}: column {k}") for k, v in chosen.items() if k not in _CSV_META}


def _number(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecipeError(f"{where}: expected a number, got {value!r}") from None
    if number < 0:
        raise RecipeError(f"{where}: weights must be >= 0, got {number}")
    return number


def as_overrides(weights: dict[str, float], sources: list[str]) -> list[str]:
    """``--set`` lines for the weights, each name checked against the recipe's sources."""
    out = []
    for name, weight in weights.items():
        if name not in sources:
            close = difflib.get_close_matches(name, sources, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (the recipe has: {', '.join(sources)})"
            raise RecipeError(f"--weights: no source named {name!r} in the recipe{hint}")
        out.append(f"sources.{name}.weight={weight!r}")
    return out
