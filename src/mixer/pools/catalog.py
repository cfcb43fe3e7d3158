"""Tool catalogs: OpenAI function specs from the built-in pool, user files, or a generator.

Every spec is normalized to ``{"type": "function", "function": {...}}`` and serialized once;
transforms gather these strings, so a spec shared by many rows is one string in memory and
one tokenization.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixer import rng
from mixer.errors import RecipeError
from mixer.pools import builtin_records, generator
from mixer.pools.loading import PoolSpec, Skips, filter_records, parse_specs, read_entries
from mixer.sources.adapters import RowError, tool_spec

GENERATED_DEFAULT = 500


@dataclass(frozen=True)
class Catalog:
    """Tool specs to draw from, with the text the relevance guard compares against."""

    ids: list[str]
    names: list[str]
    specs: list[str]  # canonical JSON strings
    about: list[str]  # description, parameter names, descriptions and enum values: what the guard reads
    probs: np.ndarray
    report: dict[str, dict[str, Any]] = field(default_factory=dict)  # per component: entries used, skipped by reason

    def __len__(self) -> int:
        return len(self.specs)


def _normalize(ident: str, raw: Any) -> tuple[str, str, str, str]:
    try:
        spec = tool_spec(raw, ident)
    except RowError as exc:
        raise RecipeError(f"tool catalog entry {exc}") from None
    fn = json.loads(spec)["function"]
    return ident, fn["name"], spec, " ".join([str(fn.get("description") or ""), *_schema_words(fn.get("parameters"))])


def _schema_words(schema: Any) -> list[str]:
    """Property names, descriptions and enum values of a JSON Schema, depth first."""
    out: list[str] = []
    if isinstance(schema, dict):
        for key, sub in (schema.get("properties") or {}).items():
            out.append(str(key))
            if isinstance(sub, dict):
                out.append(str(sub.get("description") or ""))
                out += [str(v) for v in sub.get("enum") or [] if isinstance(v, (str, int, float))]
                out += _schema_words(sub)
                out += _schema_words(sub.get("items"))
    return out


def builtin_entries() -> list[tuple[str, str, str, str]]:
    return [_normalize(f"builtin:{r['id']}", r) for r in builtin_records("tools")]


# --------------------------------------------------------------------------- generator

def generated_entries(count: int, seed: int, locale: str = "en_US") -> list[tuple[str, str, str, str]]:
    """``count`` generated specs that read like real APIs (:mod:`mixer.pools.generator`).

    Deterministic in (seed, count) and independent of the wall clock; ``locale`` is accepted
    for compatibility (the vocabulary is English, as real API specs are).
    """
    specs = generator.generate(count, int(rng.salt(seed, "generated-tools")) % (1 << 63))
    return [_normalize(f"generated:{i}", fn) for i, fn in enumerate(specs)]


# --------------------------------------------------------------------------- loading


def _entries(spec: PoolSpec, seed: int, locale: str, skips: Skips) -> list[tuple[str, str, str, str]]:
    """A component's normalized specs, after its include/exclude filters and ``max_chars`` cap
    (on the canonical spec JSON)."""
    if spec.name == "builtin" and spec.path is None:
        records = filter_records(spec, ((f"builtin tools {r['id']}", r) for r in builtin_records("tools")), skips)
        entries = [_normalize(f"builtin:{r['id']}", r) for r in records]
    elif spec.name == "generated" and spec.path is None:
        if spec.include or spec.exclude:
            raise RecipeError("catalog generated: include/exclude filter file columns; generated specs have none")
        entries = generated_entries(spec.count or GENERATED_DEFAULT, seed, locale)
    else:
        entries = [_normalize(e.ident, e.value) for e in read_entries(spec, columns=(), skips=skips)]
    if not spec.max_chars:
        return entries
    kept = [e for e in entries if len(e[2]) <= spec.max_chars]
    if len(kept) < len(entries):
        skips[f"over max_chars = {spec.max_chars}"] += len(entries) - len(kept)
    return kept


def load_catalog(catalog: Any, *, seed: int, locale: str = "en_US", base_dir: Path | None = None) -> Catalog:
    """Expand a ``catalog`` option (``"builtin"``, ``"generated"``, paths, tables) into a Catalog."""
    specs = parse_specs(catalog, "catalog", base_dir, builtins=("builtin", "generated"))
    ids, names, jsons, about, probs = [], [], [], [], []
    report: dict[str, dict[str, Any]] = {}
    total_weight = sum(s.weight for s in specs)
    for spec in specs:
        skips = Skips()
        entries = _entries(spec, seed, locale, skips)
        label = spec.name if spec.name not in report else f"{spec.name}#{len(report)}"
        report[label] = {"entries": len(entries), "skipped": dict(sorted(skips.items()))}
        if not entries:
            detail = f" ({', '.join(f'{k}: {v}' for k, v in skips.items())})" if skips else ""
            raise RecipeError(f"catalog {spec.name!r} has no tool specs{detail}")
        for ident, name, spec_json, text in entries:
            ids.append(ident)
            names.append(name)
            jsons.append(spec_json)
            about.append(text)
            probs.append(spec.weight / total_weight / len(entries))
    p = np.asarray(probs, dtype=np.float64)
    return Catalog(ids, names, jsons, about, p / p.sum(), report)
