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
from faker import Faker

from mixer import rng
from mixer.errors import RecipeError
from mixer.pools import builtin_records, templates
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

_VERBS = ("get", "list", "create", "update", "delete", "search", "sync", "export", "archive", "validate",
          "schedule", "fetch", "register", "assign", "approve", "summarize", "reconcile", "import", "tag", "notify")
_TYPES = ("string", "integer", "number", "boolean", "enum", "array", "object", "date")


def _param(fake: Faker, kind: str) -> dict[str, Any]:
    noun = fake.word()
    desc = f"The {noun} {fake.random_element(['to use', 'for the request', 'that identifies the record', 'to filter by', 'of the item'])}."
    if kind == "enum":
        return {"type": "string", "description": desc, "enum": sorted({fake.word() for _ in range(4)})}
    if kind == "array":
        return {"type": "array", "description": desc, "items": {"type": "string"}}
    if kind == "date":
        return {"type": "string", "format": "date", "description": desc}
    if kind == "object":
        inner = {fake.unique.word(): {"type": "string", "description": f"The {fake.word()} value."} for _ in range(2)}
        return {"type": "object", "description": desc, "properties": inner, "required": sorted(inner)[:1]}
    spec: dict[str, Any] = {"type": kind, "description": desc}
    if kind == "integer":
        spec["minimum"] = 0
    return spec


def generated_entries(count: int, seed: int, locale: str = "en_US") -> list[tuple[str, str, str, str]]:
    """``count`` procedurally generated specs: Faker-driven names, descriptions and schemas.

    Deterministic in (seed, count, locale) and independent of the wall clock.
    """
    fake = templates.faker(locale, int(rng.salt(seed, "generated-tools")))
    out = []
    seen: set[str] = set()
    for i in range(count):
        verb = _VERBS[fake.random_int(0, len(_VERBS) - 1)]
        noun = fake.word().lower()
        name = f"{verb}_{noun}_{fake.word().lower()}"
        while name in seen:
            name = f"{name}_{fake.random_int(2, 99)}"
        seen.add(name)
        fake.unique.clear()
        n_params = fake.random_int(1, 6)
        props = {}
        for _ in range(n_params):
            props[fake.unique.word().lower()] = _param(fake, _TYPES[fake.random_int(0, len(_TYPES) - 1)])
        required = sorted(props)[: fake.random_int(0, len(props))]
        desc = (f"{verb.capitalize()} {noun} records in the {fake.company()} {fake.bs()} system. "
                f"{fake.sentence(nb_words=10)}")
        fn = {"name": name, "description": desc,
              "parameters": {"type": "object", "properties": props, "required": required}}
        out.append(_normalize(f"generated:{i}", fn))
    return out


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
