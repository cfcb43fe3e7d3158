"""Recipe: a TOML file parsed into typed, validated objects.

Every error names the file and the key path (``sources.hh.weight``) and says what was
expected; unknown keys fail with a did-you-mean. ``--set`` overrides are applied to the raw
table before validation, so they are checked exactly like the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixer import formats
from mixer.sources import formats as input_formats
from mixer.errors import RecipeError
from mixer.specs import HUB_PREFIX, TOKEN_BUDGETS, DecontaminateSpec, DedupSpec, NearDup, Source

UNITS = ("tokens", "examples")
FORMATS = input_formats.NAMES  # declared by the input format modules themselves
OUTPUT_FORMATS = formats.NAMES  # declared by the format modules themselves


@dataclass(frozen=True)
class Output:
    """Where and how the mixture is written."""

    dir: Path
    format: str = "canonical"  # a mixer.formats name
    file: str = "parquet"  # the shards' file type: the format's, or for canonical rows parquet or jsonl
    shard_rows: int = 250_000
    chat_template: str | None = None  # text format: "chatml", a .jinja file or a tokenizer_config.json
    strict: bool = False  # any row the format cannot carry fails the build
    report: bool = True  # write report.html beside manifest.json
    rename_tools: bool = False  # rename tools whose names break the format's rule (openai) instead of rejecting
    audit: str | None = None  # a chat template: render the written rows with it at the end of the build


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: the mixture-level settings, its sources and its output."""

    name: str
    seed: int
    unit: str
    total: float | None
    tokenizer: str
    validation: float
    temperature: float | None
    rebalance: bool
    sources: tuple[Source, ...]
    output: Output
    dedup: DedupSpec
    decontaminate: DecontaminateSpec | None
    path: Path | None
    resolved: dict[str, Any]  # the table after overrides, as validated (for the manifest)
    staged: bool = False  # one of several [mixtures.NAME] of a staged recipe
    token_budget: str = "content"  # what a token counts toward budgets: see tokens.MEASURES
    chat_template: str | None = None  # count tokens as rendered by this template (mixer.template_tokens)

    @property
    def sha256(self) -> str:
        """Hash of the resolved recipe: same hash, same mixture (given the same inputs)."""
        blob = json.dumps(self.resolved, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def source(self, name: str) -> Source:
        for src in self.sources:
            if src.name == name:
                return src
        raise RecipeError(f"no source named {name!r}{_suggest(name, [s.name for s in self.sources])}")


# --------------------------------------------------------------------------- loading


def _read_table(path: Path) -> dict[str, Any]:
    try:
        raw_text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is accepted
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc}") from None
    try:
        return tomllib.loads(raw_text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: TOML syntax error: {exc}") from None


def load(path: str | Path, overrides: dict[str, Any] | list[str] | None = None,
         mixture: str | None = None) -> Recipe:
    """Read, override and validate a recipe file (one mixture of a staged recipe with ``mixture``)."""
    stages = load_all(path, overrides)
    if mixture is None:
        if len(stages) > 1:
            raise RecipeError(f"{path} defines mixtures {', '.join(stages)}: build them all, or pick one "
                              "(mixer build --only NAME, mixer.build(..., mixture=NAME))")
        return next(iter(stages.values()))
    if mixture not in stages:
        raise RecipeError(f"{path}: no mixture {mixture!r}{_suggest(mixture, list(stages))}")
    return stages[mixture]


def load_all(path: str | Path, overrides: dict[str, Any] | list[str] | None = None) -> dict[str, Recipe]:
    """Every mixture a recipe file defines, by name: one for a plain recipe, one per
    ``[mixtures.NAME]`` table for a staged recipe."""
    path = Path(path)
    return stages_from_dict(_read_table(path), base_dir=path.resolve().parent, overrides=overrides,
                            origin=str(path))


def from_dict(
    table: dict[str, Any],
    *,
    base_dir: Path | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    origin: str = "<recipe>",
) -> Recipe:
    """Validate a single-mixture recipe given as a dict (what ``load`` does after parsing TOML)."""
    stages = stages_from_dict(table, base_dir=base_dir, overrides=overrides, origin=origin)
    if len(stages) > 1:
        raise RecipeError(f"{origin} defines mixtures {', '.join(stages)}; use stages_from_dict")
    return next(iter(stages.values()))


def stages_from_dict(
    table: dict[str, Any],
    *,
    base_dir: Path | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    origin: str = "<recipe>",
) -> dict[str, Recipe]:
    table = json.loads(json.dumps(table, default=str))  # deep copy, plain types only
    base_dir = base_dir or Path.cwd()
    for key, value in _parse_overrides(overrides).items():
        _apply_override(table, key, value, origin)
    if "mixtures" not in table:
        recipe = _Validator(origin, base_dir).recipe(table)
        return {recipe.name: recipe}
    table.setdefault("name", Path(origin).stem if origin.endswith(".toml") else "mixtures")
    return {name: _Validator(f"{origin} [mixtures.{name}]", base_dir).recipe(stage, stage_of=table)
            for name, stage in _expand(table, origin).items()}


_BUDGET_KEYS = ("weight", "tokens", "examples")


def _expand(table: dict[str, Any], origin: str) -> dict[str, dict[str, Any]]:
    """Turn a staged recipe into one plain table per mixture.

    A mixture inherits every top-level setting, may override any of them, and lists the shared
    sources it uses under ``[mixtures.NAME.sources.SOURCE]`` with its own budget and options,
    which replace the shared ones key by key (a budget replaces any shared budget).
    """
    mixtures = table.pop("mixtures")
    if not isinstance(mixtures, dict) or not mixtures:
        raise RecipeError(f"{origin}: mixtures: expected [mixtures.NAME] tables")
    shared = table.pop("sources", {}) or {}
    stages = {}
    for name, spec in mixtures.items():
        if not isinstance(spec, dict):
            raise RecipeError(f"{origin}: mixtures.{name}: expected a table")
        unknown = set(spec) - (_TOP_KEYS - {"name"})
        if unknown:
            key = sorted(unknown)[0]
            raise RecipeError(f"{origin}: mixtures.{name}.{key}: unknown key{_suggest(key, sorted(_TOP_KEYS))}")
        uses = spec.get("sources")
        if not isinstance(uses, dict) or not uses:
            raise RecipeError(f"{origin}: mixtures.{name}.sources: list the sources this mixture takes, "
                              f"e.g. [mixtures.{name}.sources.SOURCE] with weight = 1")
        sources = {}
        for src, local in uses.items():
            if src not in shared:
                raise RecipeError(f"{origin}: mixtures.{name}.sources.{src}: no source {src!r} in [sources]"
                                  f"{_suggest(src, list(shared))}")
            local = local if isinstance(local, dict) else {}
            base = dict(shared[src])
            if any(k in local for k in _BUDGET_KEYS):
                for k in _BUDGET_KEYS:
                    base.pop(k, None)
            sources[src] = {**base, **local}
        output = {**(table.get("output") or {}), **(spec.get("output") or {})}
        output.pop("dir", None)
        stage = {**table, **{k: v for k, v in spec.items() if k not in ("sources", "output")},
                 "name": name, "sources": sources, "output": output}
        stages[name] = stage
    return stages


def parse_set(item: str) -> tuple[str, Any]:
    """``"sources.x.weight=0.2"`` -> ``("sources.x.weight", 0.2)``; values are TOML, else strings."""
    if "=" not in item:
        raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. --set sources.hh.weight=0.2")
    key, _, text = item.partition("=")
    key = key.strip()
    if not key:
        raise RecipeError(f"--set {item!r}: the key before '=' is empty")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key, value


def _parse_overrides(overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    return dict(parse_set(item) for item in overrides)


_INDEXED = re.compile(r"^([^\[\]]+)((?:\[-?\d+\])*)$")
# Keys whose values are files: typed on the command line, they are relative to the current
# folder (in the recipe file, to the recipe). Values that name built-ins stay as they are.
_PATH_KEYS = {"path", "pool", "catalog", "against", "chat_template"}
_BUILTIN_NAMES = {"builtin", "generated", "chatml"}


def _key_parts(key: str) -> list[str | int]:
    """``"sources.h.transforms[1].p"`` -> ``["sources", "h", "transforms", 1, "p"]``."""
    parts: list[str | int] = []
    for segment in key.split("."):
        match = _INDEXED.match(segment)
        if not segment or match is None:
            raise RecipeError(f"--set {key}: {segment!r} is not a key; write names joined by dots, with [N] "
                              "to pick an entry of an array of tables, e.g. sources.hh.transforms[0].p=0.3")
        parts.append(match.group(1))
        parts += [int(i) for i in re.findall(r"-?\d+", match.group(2))]
    return parts


def _cli_path(value: Any) -> Any:
    """Make the paths of a --set value absolute against the current folder."""
    if isinstance(value, list):
        return [_cli_path(v) for v in value]
    if isinstance(value, dict):
        return {k: _cli_path(v) if k == "path" else v for k, v in value.items()}
    if not isinstance(value, str) or value.startswith(HUB_PREFIX) or value in _BUILTIN_NAMES:
        return value
    path = Path(value).expanduser()
    if any(ch in value for ch in "*?["):  # a glob: absolute, but not resolved (that would break it)
        return str(path if path.is_absolute() else Path.cwd() / path)
    return str(path.resolve())


def _show(parts: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(parts))


def _apply_override(table: dict[str, Any], key: str, value: Any, origin: str) -> None:
    parts = _key_parts(key)
    last = parts[-1]
    if last in _PATH_KEYS or key == "output.dir":
        value = _cli_path(value)
    elif last in ("tokenizer", "chat_template") and isinstance(value, str) and (value.endswith((".json", ".jinja"))
                                                                           or "/" in value):
        value = _cli_path(value)  # a model's tokenizer.json, not an encoding name
    if parts[0] == "sources" and len(parts) >= 3 and isinstance(parts[1], str):
        known = list((table.get("sources") or {}).keys())
        if parts[1] not in known and parts[2] != "path":
            raise RecipeError(
                f"--set {key}: {origin} has no source {parts[1]!r}{_suggest(parts[1], known)}"
            )
    node: Any = table
    for i, part in enumerate(parts[:-1]):
        here, nxt_is_index = _show(parts[: i + 1]), isinstance(parts[i + 1], int)
        if isinstance(part, int):
            if not isinstance(node, list):
                raise RecipeError(f"--set {key}: {_show(parts[:i])} is not an array, so [{part}] picks nothing")
            if not 0 <= part < len(node):
                have = f"entries [0] to [{len(node) - 1}]" if node else "no entries"
                raise RecipeError(f"--set {key}: {_show(parts[:i])} has {have} (counted from 0, as in error "
                                  "messages); add new entries in the recipe file")
            nxt = node[part]
        else:
            if not isinstance(node, dict):
                raise RecipeError(f"--set {key}: {_show(parts[:i])} is not a table")
            if nxt_is_index:
                nxt = node.get(part)
                if not isinstance(nxt, list):
                    what = "is not set" if nxt is None else "is not an array"
                    raise RecipeError(f"--set {key}: {here} {what}; [N] picks an entry of an array of tables "
                                      f"such as [[{here}]] in the recipe file")
            else:
                nxt = node.setdefault(part, {})
        if isinstance(nxt, list) and not nxt_is_index:
            example = _show([*parts[: i + 1], 0, *parts[i + 1:]])
            raise RecipeError(f"--set {key}: {here} is an array of tables; pick one by its position from 0, "
                              f"e.g. --set {example}={_toml_text(value)}")
        if not isinstance(nxt, (dict, list)):
            raise RecipeError(f"--set {key}: {here} is not a table")
        node = nxt
    if isinstance(last, int):
        if not isinstance(node, list) or not 0 <= last < len(node):
            raise RecipeError(f"--set {key}: {_show(parts[:-1])} has no entry [{last}]")
        node[last] = value
    else:
        node[last] = value


def _toml_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (expected one of: {', '.join(sorted(options))})" if options else ""


# --------------------------------------------------------------------------- validation

_TOP_KEYS = {
    "name", "seed", "unit", "total", "tokenizer", "chat_template", "token_budget", "validation", "temperature",
    "rebalance",
    "sources", "output", "dedup", "decontaminate", "mixtures", "sweep",
}
_DEDUP_KEYS = {"exact", "key", "scope", "near"}
_NEAR_KEYS = {"threshold", "ngram", "permutations", "bands"}
_DECON_KEYS = {"against", "canaries", "ngram", "action"}
_SOURCE_KEYS = {
    "path", "format", "kind", "weight", "tokens", "examples", "max_epochs", "side",
    "text_field", "prompt_field", "fields", "split", "data_dir", "revision", "config", "on_error", "transforms",
    "max_record_mb",
}
_FORMAT_KEYS = {key for f in formats.FORMATS.values() for key in f.keys}  # keys one format owns
_OUTPUT_KEYS = {"dir", "format", "shard_rows", "strict", "report", "rename_tools", "audit"} | _FORMAT_KEYS


class _Validator:
    """Turns a raw table into a Recipe, raising RecipeError with the key path on problems."""

    def __init__(self, origin: str, base_dir: Path) -> None:
        self.origin = origin
        self.base_dir = base_dir

    def fail(self, key: str, message: str) -> RecipeError:
        return RecipeError(f"{self.origin}: {key}: {message}")

    def unknown(self, table: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                where = f"{prefix}.{key}" if prefix else key
                raise self.fail(where, f"unknown key{_suggest(key, sorted(allowed))}")

    def typed(self, table: dict[str, Any], key: str, where: str, kinds: tuple[type, ...],
              expected: str, default: Any = None) -> Any:
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(where, f"expected {expected}, got {value!r}")
        if not isinstance(value, kinds):
            raise self.fail(where, f"expected {expected}, got {value!r}")
        return value

    def choice(self, table: dict[str, Any], key: str, where: str, options: tuple[str, ...],
               default: str | None) -> str | None:
        value = self.typed(table, key, where, (str,), "a string", default)
        if value is not None and value not in options:
            raise self.fail(where, f"expected one of {', '.join(options)}, got {value!r}"
                            f"{_suggest(value, list(options))}")
        return value

    def number(self, table: dict[str, Any], key: str, where: str, *, minimum: float = 0.0,
               strict: bool = False, default: float | None = None) -> float | None:
        value = self.typed(table, key, where, (int, float), "a number", default)
        if value is None:
            return None
        if value < minimum or (strict and value == minimum):
            op = ">" if strict else ">="
            raise self.fail(where, f"expected a number {op} {minimum:g}, got {value!r}")
        return float(value)

    def count(self, table: dict[str, Any], key: str, where: str) -> int | None:
        value = self.typed(table, key, where, (int, float), "a whole number > 0")
        if value is None:
            return None
        if value <= 0 or float(value) != int(value):
            raise self.fail(where, f"expected a whole number > 0, got {value!r}")
        return int(value)

    def recipe(self, table: dict[str, Any], stage_of: dict[str, Any] | None = None) -> Recipe:
        self.unknown(table, _TOP_KEYS - {"mixtures"}, "")
        name = self.typed(table, "name", "name", (str,), "a string",
                          Path(self.origin).stem if self.origin.endswith(".toml") else "mixture")
        seed = self.typed(table, "seed", "seed", (int,), "an integer", 0)
        unit = self.choice(table, "unit", "unit", UNITS, "tokens")
        total = self.number(table, "total", "total", strict=True)
        tokenizer = self.typed(table, "tokenizer", "tokenizer", (str,),
                               "a tiktoken encoding name, or the path of a model's tokenizer.json", "cl100k_base")
        if tokenizer.endswith(".json") or "/" in tokenizer:  # a model's tokenizer, relative to the recipe
            tokenizer = str(self.base_dir / Path(tokenizer).expanduser())
        token_budget = self.choice(table, "token_budget", "token_budget", TOKEN_BUDGETS, "content")
        chat_template = self.typed(table, "chat_template", "chat_template", (str,),
                                   "chatml, a .jinja file, a tokenizer_config.json or a saved tokenizer folder")
        if chat_template not in (None, "chatml"):
            chat_template = str(self.base_dir / Path(chat_template).expanduser())
        validation = self.number(table, "validation", "validation", default=0.0)
        if validation >= 1.0:
            raise self.fail("validation", f"expected a fraction in [0, 1), got {validation!r}")
        temperature = self.number(table, "temperature", "temperature", strict=True)
        rebalance = self.typed(table, "rebalance", "rebalance", (bool,), "true or false", False)

        sources_table = self.typed(table, "sources", "sources", (dict,), "a table of sources")
        if not sources_table:
            raise self.fail("sources", "no sources: add at least one [sources.NAME] table with a path")
        sources = tuple(
            self.source(name, spec, temperature is not None) for name, spec in sources_table.items()
        )
        self.check_budgets(sources, total, temperature)
        output = self.output(self.typed(table, "output", "output", (dict,), "a table", {}), name)
        if unit == "tokens" and token_budget == "assistant" and formats.get(output.format).prompts:
            raise self.fail("token_budget", f"format = \"{output.format}\" writes prompts the model answers itself "
                            "(RL): their answers are cut off, so no assistant tokens are written to budget. Use "
                            "token_budget = \"content\" or \"rendered\", or unit = \"examples\"")
        if stage_of is not None:  # a stage writes into its own folder under the recipe's output
            root = self.output(dict(stage_of.get("output") or {}, format="canonical"), stage_of.get("name", "mixture"))
            output = dataclasses.replace(output, dir=root.dir / name)
        dedup = self.dedup(self.typed(table, "dedup", "dedup", (dict,), "a table", {}))
        decon = self.decontaminate(table.get("decontaminate"))
        return Recipe(
            name=name, seed=seed, unit=unit, total=total, tokenizer=tokenizer,
            validation=validation, temperature=temperature, rebalance=rebalance,
            sources=sources, output=output, dedup=dedup, decontaminate=decon,
            path=None if self.origin.startswith("<") else Path(self.origin.split(" [mixtures.")[0]), resolved=table,
            staged=stage_of is not None, token_budget=token_budget, chat_template=chat_template,
        )

    def source(self, name: str, spec: Any, tempered: bool) -> Source:
        where = f"sources.{name}"
        if not isinstance(spec, dict):
            raise self.fail(where, f"expected a table, got {spec!r}")
        if "/" in name or not name:
            raise self.fail(where, "source names must be non-empty and contain no '/'")
        self.unknown(spec, _SOURCE_KEYS, where)
        path = self.typed(spec, "path", f"{where}.path", (str,), "a file, folder, glob or hf://id")
        if not path:
            raise self.fail(f"{where}.path", "missing: give a file, folder, glob or hf://owner/name")
        if not path.startswith(HUB_PREFIX):
            path = str((self.base_dir / Path(path).expanduser()).resolve()) if not any(
                ch in path for ch in "*?[") else str(self.base_dir / Path(path).expanduser())
        weight = self.number(spec, "weight", f"{where}.weight")
        tokens = self.count(spec, "tokens", f"{where}.tokens")
        examples = self.count(spec, "examples", f"{where}.examples")
        given = [k for k, v in (("weight", weight), ("tokens", tokens), ("examples", examples))
                 if v is not None]
        if len(given) > 1:
            raise self.fail(where, f"give only one of weight, tokens, examples (got {' and '.join(given)})")
        if not given and not tempered:
            raise self.fail(where, "no budget: give weight = <share>, tokens = N or examples = N")
        fmt = self.choice(spec, "format", f"{where}.format", FORMATS, "auto")
        kind = self.choice(spec, "kind", f"{where}.kind", ("chat", "document"), None)
        fields = self.typed(spec, "fields", f"{where}.fields", (dict,), "a table of name = \"column\"", {})
        for key, value in fields.items():
            if not isinstance(value, str):
                raise self.fail(f"{where}.fields.{key}", f"expected a column name, got {value!r}")
        transforms = self.typed(spec, "transforms", f"{where}.transforms", (list,),
                                "an array of tables ([[sources.NAME.transforms]])", [])
        for i, item in enumerate(transforms):
            if not isinstance(item, dict) or "type" not in item:
                raise self.fail(f"{where}.transforms[{i}]", "expected a table with a type = \"...\" key")
        from mixer.transforms import check_specs  # late import: transforms build on recipe types

        try:
            check_specs(tuple(transforms), name)
        except RecipeError as exc:
            raise RecipeError(f"{self.origin}: {exc}") from None
        return Source(
            name=name, path=path, format=fmt, kind=kind, weight=weight, tokens=tokens,
            examples=examples,
            max_epochs=self.number(spec, "max_epochs", f"{where}.max_epochs", strict=True, default=1.0),
            side=self.choice(spec, "side", f"{where}.side", ("chosen", "rejected"), "chosen"),
            text_field=self.typed(spec, "text_field", f"{where}.text_field", (str,), "a column name", "text"),
            prompt_field=self.typed(spec, "prompt_field", f"{where}.prompt_field", (str,), "a column name", "prompt"),
            fields=dict(fields),
            split=self.typed(spec, "split", f"{where}.split", (str,), "a split name", "train"),
            data_dir=self.typed(spec, "data_dir", f"{where}.data_dir", (str,), "a folder in the hub repo"),
            revision=self.typed(spec, "revision", f"{where}.revision", (str,), "a git revision"),
            config=self.typed(spec, "config", f"{where}.config", (str,), "a dataset config name"),
            on_error=self.choice(spec, "on_error", f"{where}.on_error", ("fail", "skip"), "fail"),
            max_record_mb=self.number(spec, "max_record_mb", f"{where}.max_record_mb", strict=True, default=16.0),
            transforms=tuple(transforms),
        )

    def check_budgets(self, sources: tuple[Source, ...], total: float | None,
                      temperature: float | None) -> None:
        weighted = [s for s in sources if s.budget is None]
        if weighted and total is None:
            names = ", ".join(s.name for s in weighted)
            raise self.fail("total", f"missing: sources {names} are weighted, so the mixture needs "
                                     "a total (in its unit) to take shares of")
        if weighted and temperature is None and sum(s.weight or 0.0 for s in weighted) <= 0:
            raise self.fail("sources", "all weights are zero: give at least one source a weight > 0")

    def dedup(self, table: dict[str, Any]) -> DedupSpec:
        self.unknown(table, _DEDUP_KEYS, "dedup")
        exact = self.typed(table, "exact", "dedup.exact", (bool,), "true or false", True)
        key = self.choice(table, "key", "dedup.key", ("conversation", "user", "text"), "conversation")
        scope = self.choice(table, "scope", "dedup.scope", ("global", "source"), "global")
        near_raw = table.get("near", False)
        near = None
        if near_raw is True:
            near = NearDup()
        elif isinstance(near_raw, dict):
            self.unknown(near_raw, _NEAR_KEYS, "dedup.near")
            threshold = self.number(near_raw, "threshold", "dedup.near.threshold", strict=True, default=0.8)
            if threshold > 1:
                raise self.fail("dedup.near.threshold", f"expected a Jaccard similarity in (0, 1], got {threshold!r}")
            permutations = self.count(near_raw, "permutations", "dedup.near.permutations") or 128
            bands = self.count(near_raw, "bands", "dedup.near.bands") or 32
            if permutations % bands:
                raise self.fail("dedup.near.bands", f"must divide permutations ({permutations}), got {bands}")
            near = NearDup(threshold, self.count(near_raw, "ngram", "dedup.near.ngram") or 5, permutations, bands)
        elif near_raw is not False:
            raise self.fail("dedup.near", f"expected true, false or a table, got {near_raw!r}")
        return DedupSpec(key=key, scope=scope, near=near, exact=exact)

    def decontaminate(self, table: Any) -> DecontaminateSpec | None:
        if table is None:
            return None
        if not isinstance(table, dict):
            raise self.fail("decontaminate", f"expected a table, got {table!r}")
        self.unknown(table, _DECON_KEYS, "decontaminate")
        against = self.typed(table, "against", "decontaminate.against", (list, str), "a list of paths or globs", [])
        against = [against] if isinstance(against, str) else against
        canaries = self.typed(table, "canaries", "decontaminate.canaries", (list,), "a list of strings", [])
        for key, items in (("against", against), ("canaries", canaries)):
            if not all(isinstance(x, str) and x for x in items):
                raise self.fail(f"decontaminate.{key}", "expected non-empty strings")
        if not against and not canaries:
            raise self.fail("decontaminate", "give against = [eval files or globs] and/or canaries = [strings]")
        ngram = self.count(table, "ngram", "decontaminate.ngram") or 13
        action = self.choice(table, "action", "decontaminate.action", ("drop", "tag"), "drop")
        paths = tuple(p if p.startswith(HUB_PREFIX) or Path(p).is_absolute() else str(self.base_dir / p)
                      for p in against)
        return DecontaminateSpec(against=paths, canaries=tuple(canaries), ngram=ngram, action=action)

    def output(self, table: dict[str, Any], name: str) -> Output:
        self.unknown(table, _OUTPUT_KEYS, "output")
        raw_dir = self.typed(table, "dir", "output.dir", (str,), "a folder path")
        out_dir = (self.base_dir / raw_dir).resolve() if raw_dir else (Path.cwd() / "out" / name)
        shard_rows = self.count(table, "shard_rows", "output.shard_rows") or 250_000
        name = self.choice(table, "format", "output.format", OUTPUT_FORMATS, "canonical")
        fmt = formats.get(name)
        for key in sorted(set(table) & _FORMAT_KEYS - set(fmt.keys)):
            owners = " or ".join(f'format = "{f.name}"' for f in formats.FORMATS.values() if key in f.keys)
            raise self.fail(f"output.{key}", f"only used with {owners}")
        template = self.typed(table, "chat_template", "output.chat_template", (str,), "chatml or a file path")
        if template not in (None, "chatml") and not Path(template).is_absolute():
            template = str(self.base_dir / template)
        strict = self.typed(table, "strict", "output.strict", (bool,), "true or false", False)
        report = self.typed(table, "report", "output.report", (bool,), "true or false", True)
        rename_tools = self.typed(table, "rename_tools", "output.rename_tools", (bool,), "true or false", False)
        audit = self.typed(table, "audit", "output.audit", (str,),
                           "a chat template: chatml, a .jinja file, a tokenizer folder or tokenizer_config.json")
        if audit is not None and fmt.read_back is None:
            raise self.fail("output.audit", f"{fmt.name} output is already rendered; audit a chat format (trl, openai, ...)")
        if audit not in (None, "chatml") and not Path(audit).expanduser().is_absolute():
            audit = str(self.base_dir / Path(audit).expanduser())
        file = name if name in fmt.aliases else fmt.suffix  # canonical's aliases name its file type
        return Output(dir=out_dir, format=fmt.name, file=file, shard_rows=shard_rows, chat_template=template, strict=strict,
                      report=report, rename_tools=rename_tools, audit=audit)
