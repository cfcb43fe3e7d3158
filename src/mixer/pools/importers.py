"""Tool catalogs from the specs people have: BFCL, APIGen/xLAM, ToolACE, glaive, OpenAI and
Anthropic tool JSON, each turned into OpenAI ``{"type": "function", "function": {...}}`` specs.

Every spec is checked as JSON Schema (Draft 7 metaschema, plus the function-calling rules:
a name, an object ``parameters`` schema whose ``required`` names exist) before it enters a
catalog; specs that fail are skipped and counted under their reason, never half-imported.
Exact duplicates (same name and schema) are kept once.

Used by ``mixer pools import IN --from FORMAT -o catalog.jsonl``; the output is a catalog file
the ``tools`` transform reads (``catalog = "catalog.jsonl"``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixer.errors import DataError
from mixer.sources.files import Unreadable, iter_records

# BFCL and xLAM name Python types; JSON Schema names these
_TYPES = {"dict": "object", "object": "object", "float": "number", "number": "number", "int": "integer",
          "integer": "integer", "str": "string", "string": "string", "bool": "boolean", "boolean": "boolean",
          "list": "array", "array": "array", "tuple": "array", "null": "null", "any": None,
          # BFCL's Java and JavaScript categories
          "hashmap": "object", "map": "object", "arraylist": "array", "set": "array", "long": "integer",
          "short": "integer", "byte": "integer", "double": "number", "char": "string", "character": "string"}
_JSON_TYPES = {"object", "number", "integer", "string", "boolean", "array", "null"}


@dataclass
class Imported:
    """Specs taken from one file and what was skipped, by reason."""

    specs: list[dict[str, Any]] = field(default_factory=list)
    read: int = 0  # candidate specs found
    skipped: Counter = field(default_factory=Counter)
    example: dict[str, str] = field(default_factory=dict)  # reason -> where the first one was

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        self.example.setdefault(reason, where)


# --------------------------------------------------------------------------- schema fixes


def _schema(node: Any) -> Any:
    """Python-style types (``dict``, ``float``, ``tuple``, ``"str, optional"``) as JSON Schema types."""
    if isinstance(node, list):
        return [_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _schema(v) if k in ("properties", "items", "additionalProperties", "anyOf", "oneOf", "allOf")
           else v for k, v in node.items()}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _schema(v) for k, v in out["properties"].items()}
    kind = out.get("type")
    if isinstance(kind, str):
        base = kind.split(",")[0].strip().lower()
        base = re.sub(r"\[.*\]$", "", base)  # List[str] -> list
        mapped = _TYPES.get(base, base)
        if mapped is None:
            out.pop("type")
        else:
            out["type"] = mapped
    return out


def _check(spec: dict[str, Any]) -> str | None:
    """The reason ``spec`` cannot be used, or None."""
    fn = spec["function"]
    if not isinstance(fn.get("name"), str) or not fn["name"].strip():
        return "no function name"
    params = fn.get("parameters")
    if params is None:
        fn["parameters"] = params = {"type": "object", "properties": {}}
    if not isinstance(params, dict) or params.get("type") != "object":
        return "parameters is not an object schema"
    props = params.get("properties", {})
    if not isinstance(props, dict):
        return "parameters.properties is not an object"
    for name, sub in props.items():
        if not isinstance(sub, dict):
            return f"parameter {name!r} is not a schema"
        kind = sub.get("type")
        if isinstance(kind, str) and kind not in _JSON_TYPES:
            return f"parameter type {kind!r} is not a JSON Schema type"
    required = params.get("required", [])
    if not isinstance(required, list) or any(r not in props for r in required):
        return "required names a parameter that does not exist"
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft7Validator.check_schema(params)
    except SchemaError as exc:
        return f"not a valid JSON Schema ({exc.validator})"
    return None


def _function(name: Any, description: Any, parameters: Any) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": name}
    if description is not None:
        fn["description"] = description
    if parameters is not None:
        fn["parameters"] = _schema(parameters)
    return {"type": "function", "function": fn}


# --------------------------------------------------------------------------- readers, one per format


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return []
    return value if isinstance(value, list) else [value] if isinstance(value, dict) else []


def _openai(record: Any) -> Iterator[dict[str, Any]]:
    """OpenAI tools (``{"type": "function", "function": {...}}``), bare functions, or a row's ``tools``."""
    for item in _as_list(record.get("tools") if isinstance(record, dict) and "tools" in record else record):
        if isinstance(item, dict):
            fn = item.get("function") if isinstance(item.get("function"), dict) else item
            yield _function(fn.get("name"), fn.get("description"), fn.get("parameters"))


def _anthropic(record: Any) -> Iterator[dict[str, Any]]:
    """Anthropic tools: ``{"name", "description", "input_schema"}`` (alone, in a list, or a row's ``tools``)."""
    for item in _as_list(record.get("tools") if isinstance(record, dict) and "tools" in record else record):
        if isinstance(item, dict):
            yield _function(item.get("name"), item.get("description"), item.get("input_schema"))


def _bfcl(record: Any) -> Iterator[dict[str, Any]]:
    """BFCL function docs (``type: dict``, ``float``...), alone or a question row's ``function`` list."""
    items = record
    if isinstance(record, dict):
        if isinstance(record.get("function"), list):  # a BFCL question row
            items = record["function"]
        elif isinstance(record.get("original"), dict):  # a converted copy keeping BFCL's original
            items = record["original"]
        elif "tools" in record:  # a question row already converted to OpenAI tools
            yield from _openai(record)
            return
    for item in _as_list(items):
        if isinstance(item, dict):
            yield _function(item.get("name"), item.get("description"), item.get("parameters"))


def _xlam(record: Any) -> Iterator[dict[str, Any]]:
    """APIGen / xLAM rows: ``tools`` is a JSON string of ``{"name", "description", "parameters"}``
    whose parameters map each argument to ``{"type": "str, optional", "description", "default"}``."""
    for item in _as_list(record.get("tools") if isinstance(record, dict) else record):
        if not isinstance(item, dict):
            continue
        params = item.get("parameters")
        if isinstance(params, dict) and params.get("type") != "object" and "properties" not in params:
            props, required = {}, []
            for arg, sub in params.items():
                sub = dict(sub) if isinstance(sub, dict) else {"description": str(sub)}
                kind = str(sub.get("type", ""))
                if "optional" not in kind.lower() and "default" not in sub:
                    required.append(arg)
                props[arg] = sub
            params = {"type": "object", "properties": props, **({"required": required} if required else {})}
        yield _function(item.get("name"), item.get("description"), params)


def _json_values(text: str) -> Iterator[Any]:
    """Every JSON object or array embedded in ``text`` (tool lists inside a system prompt)."""
    decoder = json.JSONDecoder()
    i = 0
    while True:
        starts = [j for j in (text.find("{", i), text.find("[", i)) if j >= 0]
        if not starts:
            return
        i = min(starts)
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        yield value
        i = end


def _from_system(record: Any) -> Iterator[dict[str, Any]]:
    """ToolACE and glaive rows: the tools are JSON inside the system prompt text."""
    text = record.get("system") if isinstance(record, dict) else record
    if not isinstance(text, str):
        return
    for value in _json_values(text):
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "name" in item:
                yield _function(item.get("name"), item.get("description"), item.get("parameters"))


READERS: dict[str, Callable[[Any], Iterator[dict[str, Any]]]] = {
    "openai": _openai, "anthropic": _anthropic, "bfcl": _bfcl, "xlam": _xlam, "toolace": _from_system,
    "glaive": _from_system,
}


def import_specs(path: Path, fmt: str) -> Imported:
    """Read every spec in ``path`` (JSON, JSON Lines, gzip) as ``fmt``; validate and deduplicate."""
    if fmt not in READERS:
        raise DataError(f"--from {fmt}: unknown catalog format; expected one of {', '.join(READERS)}")
    result = Imported()
    seen: set[str] = set()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    for located in iter_records([path], path):
        where = f"{path.name}:{located.line}"
        record = located.record
        if isinstance(record, Unreadable):
            result.skip(f"unreadable record ({record.message})", where)
            continue
        for spec in READERS[fmt](record):
            result.read += 1
            reason = _check(spec)
            if reason:
                result.skip(reason, where)
                continue
            key = json.dumps(spec, sort_keys=True)
            if key in seen:
                result.skip("duplicate of an earlier spec", where)
                continue
            seen.add(key)
            result.specs.append(spec)
    return result


def write_catalog(specs: list[dict[str, Any]], out: Path) -> None:
    """One spec per line, written to a temporary name and renamed: never a half-written catalog."""
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for spec in specs:
            fh.write(json.dumps(spec, ensure_ascii=False) + "\n")
    tmp.replace(out)
