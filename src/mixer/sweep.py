"""Sweeps: many mixtures of one recipe from one preparation, for ablations and mixture fits.

A recipe's ``[sweep]`` table names the variants; each is the base recipe plus overrides
(the same keys ``--set`` takes):

- ``grid``: a table of key -> list of values; every combination is a variant;
- ``ablate``: key -> list of values; one variant per value, every other key at the base;
- ``drop``: transforms to switch off, one variant each (``"sources.hh.transforms[1]"``);
- ``[sweep.swarm]``: Dirichlet draws of the weighted sources' weights (``variants``,
  ``concentration``, ``prior`` = "recipe" | "uniform" | a table of weights, ``min_weight``,
  ``pinned`` weights, ``seed``), as RegMix and olmix use to fit mixture laws;
- ``base = true`` (default) adds the recipe as it is.

Every variant is built like ``mixer build`` (its own folder, manifest and files) through a
shared prepared-source cache (:mod:`mixer.cache`), so the first variant pays for reading and
tokenizing and the rest only select and write. Selection ranks rows by a seeded hash, so
variants differ only in their ratios: a smaller budget takes a subset of a larger one's rows.
A variant whose targets cannot be met under ``max_epochs`` is listed as infeasible with the
reason, never clipped. ``ratios.csv`` holds each built variant's realised shares (as written)
in the column layout mixture-fitting tools read: ``run, name, index``, one column per source
summing to 1, ``tokens``, ``rows``; ``mixer build --weights ratios.csv:NAME`` feeds one back.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixer import manifest as manifest_mod
from mixer import recipe as recipe_mod
from mixer import rng, writers
from mixer.executors import CHUNK_ROWS
from mixer.cache import Cache, default_root
from mixer.engine import Progress
from mixer.errors import DataError, RecipeError
from mixer.recipe import Recipe

_KEYS = {"grid", "ablate", "drop", "swarm", "base"}
_SWARM_KEYS = {"variants", "concentration", "prior", "min_weight", "pinned", "seed"}
_DROP = re.compile(r"^sources\.([^.\[\]]+)\.transforms\[(\d+)\]$")


@dataclass(frozen=True)
class Swarm:
    """Dirichlet draws of the weighted sources' weights."""

    variants: int
    concentration: float = 1.0
    prior: str | dict[str, float] = "recipe"
    min_weight: float = 0.0
    pinned: dict[str, float] = field(default_factory=dict)
    seed: int | None = None


@dataclass(frozen=True)
class Spec:
    """A validated ``[sweep]`` table."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    ablate: dict[str, list[Any]] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)
    swarm: Swarm | None = None
    base: bool = True


@dataclass(frozen=True)
class Variant:
    """One mixture of the sweep: the base recipe plus ``overrides``."""

    index: int
    name: str
    kind: str  # base | grid | ablate | drop | swarm
    overrides: dict[str, Any]


@dataclass
class Outcome:
    """What building a variant gave: its manifest, or why it could not be built."""

    variant: Variant
    manifest: dict[str, Any] | None = None
    reason: str | None = None
    seconds: float = 0.0

    @property
    def built(self) -> bool:
        return self.manifest is not None


def parse(table: Any, where: str = "sweep") -> Spec:
    """Validate a ``[sweep]`` table; errors name the key and say what was expected."""
    if not isinstance(table, dict) or not table:
        raise RecipeError(f"{where}: expected a table with grid, ablate, drop or [sweep.swarm]")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise RecipeError(f"{where}.{unknown[0]}: unknown key; expected {', '.join(sorted(_KEYS))}")
    grid = _lists(table.get("grid", {}), f"{where}.grid")
    ablate = _lists(table.get("ablate", {}), f"{where}.ablate")
    drop = table.get("drop", [])
    if not isinstance(drop, list) or not all(isinstance(d, str) and _DROP.match(d) for d in drop):
        raise RecipeError(f"{where}.drop: expected a list like [\"sources.hh.transforms[1]\"], got {drop!r}")
    base = table.get("base", True)
    if not isinstance(base, bool):
        raise RecipeError(f"{where}.base: expected true or false, got {base!r}")
    swarm = _swarm(table["swarm"], f"{where}.swarm") if "swarm" in table else None
    spec = Spec(grid, ablate, list(drop), swarm, base)
    if not (grid or ablate or drop or swarm):
        raise RecipeError(f"{where}: no variants; add grid, ablate, drop or [sweep.swarm]")
    return spec


def _lists(value: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        raise RecipeError(f"{where}: expected a table of key = [values], e.g. {{\"total\" = [1e6, 2e6]}}")
    for key, values in value.items():
        if not isinstance(values, list) or not values:
            raise RecipeError(f"{where}.\"{key}\": expected a non-empty list of values, got {values!r}")
        recipe_mod.parse_set(f"{key}=0")  # the key's syntax, checked like --set
    return {str(k): list(v) for k, v in value.items()}


def _swarm(value: Any, where: str) -> Swarm:
    if not isinstance(value, dict):
        raise RecipeError(f"{where}: expected a table ([sweep.swarm])")
    unknown = sorted(set(value) - _SWARM_KEYS)
    if unknown:
        raise RecipeError(f"{where}.{unknown[0]}: unknown key; expected {', '.join(sorted(_SWARM_KEYS))}")
    n = value.get("variants")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RecipeError(f"{where}.variants: expected a whole number >= 1, got {n!r}")
    conc = value.get("concentration", 1.0)
    if isinstance(conc, bool) or not isinstance(conc, (int, float)) or conc <= 0:
        raise RecipeError(f"{where}.concentration: expected a number > 0, got {conc!r}")
    prior = value.get("prior", "recipe")
    if not (prior in ("recipe", "uniform") or (isinstance(prior, dict) and prior and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in prior.values()))):
        raise RecipeError(f"{where}.prior: expected \"recipe\", \"uniform\" or a table of weights > 0, got {prior!r}")
    low = value.get("min_weight", 0.0)
    if isinstance(low, bool) or not isinstance(low, (int, float)) or not 0 <= low < 1:
        raise RecipeError(f"{where}.min_weight: expected a number in [0, 1), got {low!r}")
    pinned = value.get("pinned", {})
    if not isinstance(pinned, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in pinned.values()):
        raise RecipeError(f"{where}.pinned: expected a table of source = share in [0, 1], got {pinned!r}")
    if sum(pinned.values()) > 1:
        raise RecipeError(f"{where}.pinned: pinned shares add up to {sum(pinned.values()):g}, more than 1")
    seed = value.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RecipeError(f"{where}.seed: expected an integer, got {seed!r}")
    return Swarm(n, float(conc), prior if isinstance(prior, str) else {str(k): float(v) for k, v in prior.items()},
                 float(low), {str(k): float(v) for k, v in pinned.items()}, seed)


def variants(spec: Spec, base: Recipe) -> list[Variant]:
    """Every variant of the sweep, in a stable order: base, grid, ablations, drops, swarm."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    if spec.base:
        out.append(("base", "base", {}))
    if spec.grid:
        keys = list(spec.grid)
        for i, combo in enumerate(itertools.product(*(spec.grid[k] for k in keys))):
            out.append((f"grid-{i:03d}", "grid", dict(zip(keys, combo))))
    for key, values in spec.ablate.items():
        for value in values:
            shown = "none" if value in ([], {}) else value if isinstance(value, str) else json.dumps(value)
            out.append((f"{_short(key)}={_short(shown)}", "ablate", {key: value}))
    for item in spec.drop:
        match = _DROP.match(item)
        assert match is not None
        source, position = match.group(1), int(match.group(2))
        src = next((s for s in base.sources if s.name == source), None)
        if src is None:
            raise RecipeError(f"sweep.drop: no source {source!r} in the recipe (has: "
                              f"{', '.join(s.name for s in base.sources)})")
        if position >= len(src.transforms):
            raise RecipeError(f"sweep.drop: sources.{source} has {len(src.transforms)} transforms "
                              f"([0] to [{len(src.transforms) - 1}]); {item} picks none")
        kept = [t for i, t in enumerate(_raw_transforms(base, source)) if i != position]
        out.append((f"no-{source}-{src.transforms[position].get('type', position)}", "drop",
                    {f"sources.{source}.transforms": kept}))
    if spec.swarm is not None:
        for i, weights in enumerate(_dirichlet(spec.swarm, base)):
            out.append((f"swarm-{i:03d}", "swarm",
                        {f"sources.{name}.weight": round(w, 6) for name, w in weights.items()}))
    names: dict[str, int] = {}
    result = []
    for index, (name, kind, overrides) in enumerate(out):
        name = re.sub(r"[^A-Za-z0-9._=+-]", "_", name)[:80]
        if name in names:  # two values that print alike: keep folder names unique
            names[name] += 1
            name = f"{name}-{names[name]}"
        names.setdefault(name, 0)
        result.append(Variant(index, name, kind, overrides))
    return result


def _short(text: str) -> str:
    """``sources.hh.transforms[1].p`` -> ``hh.t1.p``: a readable folder name."""
    return re.sub(r"transforms\[(\d+)\]", r"t\1", text.replace("sources.", ""))


def _raw_transforms(base: Recipe, source: str) -> list[dict[str, Any]]:
    """The source's transform tables as written in the recipe (paths still relative to it)."""
    return list(((base.resolved.get("sources") or {}).get(source) or {}).get("transforms") or [])


def _dirichlet(swarm: Swarm, base: Recipe) -> list[dict[str, float]]:
    """``swarm.variants`` weight vectors over the weighted sources, each summing to 1."""
    names = [s.name for s in base.sources if s.budget is None]
    if len(names) < 2:
        raise RecipeError("sweep.swarm: needs at least two weighted sources (sources with a weight, not a budget)")
    for name in list(swarm.pinned) + (list(swarm.prior) if isinstance(swarm.prior, dict) else []):
        if name not in names:
            raise RecipeError(f"sweep.swarm: {name!r} is not a weighted source of the recipe "
                              f"(weighted: {', '.join(names)})")
    free = [n for n in names if n not in swarm.pinned]
    if not free:
        raise RecipeError("sweep.swarm: every weighted source is pinned; nothing to draw")
    rest = 1.0 - sum(swarm.pinned.values())
    if swarm.prior == "uniform":
        prior = np.ones(len(free))
    elif swarm.prior == "recipe":
        prior = np.array([next(s.weight for s in base.sources if s.name == n) or 0.0 for n in free], dtype=float)
        prior = prior if prior.sum() > 0 else np.ones(len(free))
    else:
        assert isinstance(swarm.prior, dict)
        prior = np.array([swarm.prior.get(n, 0.0) for n in free], dtype=float)
        if (prior <= 0).any():
            missing = [n for n, p in zip(free, prior) if p <= 0]
            raise RecipeError(f"sweep.swarm.prior: no weight for {', '.join(missing)}")
    alpha = swarm.concentration * len(free) * prior / prior.sum()
    gen = rng.generator(base.seed if swarm.seed is None else swarm.seed, "sweep", "swarm")
    out = []
    for _ in range(swarm.variants):
        for _attempt in range(10_000):
            draw = gen.dirichlet(alpha) * rest
            if (draw >= swarm.min_weight - 1e-12).all():
                break
        else:
            raise RecipeError(f"sweep.swarm.min_weight = {swarm.min_weight:g}: no draw in 10,000 met it for "
                              f"{len(free)} free sources; lower min_weight or raise concentration")
        weights = dict(zip(free, (float(x) for x in draw)))
        weights.update(swarm.pinned)
        out.append({n: weights[n] for n in names})
    return out


def plan(recipe_path: str | Path, overrides: list[str] | None = None) -> tuple[Recipe, Spec, list[Variant]]:
    """The base recipe, its ``[sweep]`` spec and every variant, all validated before anything is read."""
    base = recipe_mod.load(recipe_path, overrides)
    if base.staged:
        raise RecipeError(f"{recipe_path}: mixer sweep takes a single-mixture recipe (no [mixtures.NAME])")
    if "sweep" not in base.resolved:
        raise RecipeError(f"{recipe_path}: no [sweep] table; add one with grid, ablate, drop or [sweep.swarm] "
                          "(README: Sweeps)")
    spec = parse(base.resolved["sweep"])
    found = variants(spec, base)
    for v in found:  # a bad key or value fails now, not after the first builds
        try:
            variant_recipe(recipe_path, overrides, v)
        except RecipeError as exc:
            raise RecipeError(f"sweep variant {v.name}: {exc}") from None
    return base, spec, found


def variant_recipe(recipe_path: str | Path, overrides: list[str] | None, variant: Variant) -> Recipe:
    merged: dict[str, Any] = dict(recipe_mod.parse_set(s) for s in overrides or [])
    base_dir = Path(recipe_path).resolve().parent
    for key, value in variant.overrides.items():
        merged[key] = _recipe_relative(key, value, base_dir)
    return recipe_mod.load(recipe_path, merged)


def _recipe_relative(key: str, value: Any, base_dir: Path) -> Any:
    """Paths in ``[sweep]`` values are relative to the recipe, like the rest of the file."""
    last = re.sub(r"\[-?\d+\]$", "", key.rsplit(".", 1)[-1])
    if last in ("path", "pool", "catalog", "against") and isinstance(value, str) and value not in (
            "builtin", "generated") and not value.startswith(recipe_mod.HUB_PREFIX) and not Path(value).is_absolute():
        return str(base_dir / value)
    return value


def run(recipe_path: str | Path, out: str | Path, overrides: list[str] | None = None, *, force: bool = False,
        executor: str = "memory", chunk_rows: int = CHUNK_ROWS, cache_dir: str | Path | None = None,
        progress: Progress | None = None, on_variant: Callable[[Outcome], None] | None = None,
        address: str | None = None) -> list[Outcome]:
    """Build every variant into ``out/NAME/``, then write ``out/manifest.json`` and ``out/ratios.csv``.

    The prepared-source cache is ``cache_dir``, else ``MIXER_CACHE``, else a temporary one for
    this sweep. Infeasible variants are recorded with their reason; the others are written."""
    from mixer.pipeline import build_and_write

    base, spec, found = plan(recipe_path, overrides)
    root = Path(out).expanduser().resolve()
    _check_root(root, force, [v.name for v in found])
    for v in found:
        writers.check_target(root / v.name, force)
    tmp_cache = None
    cache_root = Path(cache_dir).expanduser() if cache_dir else default_root()
    if cache_root is None:
        tmp_cache = Path(tempfile.mkdtemp(prefix="mixer-sweep-cache-"))
        cache_root = tmp_cache
    store = Cache(cache_root)
    outcomes: list[Outcome] = []
    try:
        root.mkdir(parents=True, exist_ok=True)
        for v in found:
            started = time.perf_counter()
            outcome = Outcome(v)
            try:
                parsed = variant_recipe(recipe_path, overrides, v)
                _, outcome.manifest = build_and_write(parsed, root / v.name, executor=executor, chunk_rows=chunk_rows,
                                                      force=force, progress=progress, cache=store, address=address)
            except DataError as exc:
                outcome.reason = str(exc)
            outcome.seconds = time.perf_counter() - started
            outcomes.append(outcome)
            if on_variant is not None:
                on_variant(outcome)
    finally:
        if tmp_cache is not None:
            shutil.rmtree(tmp_cache, ignore_errors=True)
    sources = [s.name for s in base.sources]
    _write_atomic(root / "ratios.csv", ratios_csv(outcomes, sources, base.name))
    _write_atomic(root / "manifest.json", json.dumps(sweep_manifest(recipe_path, base, spec, outcomes, root),
                                                     indent=2, ensure_ascii=False) + "\n")
    return outcomes


def _check_root(root: Path, force: bool, names: list[str]) -> None:
    """The sweep folder: new, empty, or (with force) a previous sweep's, holding only what it wrote;
    that sweep's variant folders this one does not make again are removed."""
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return
    foreign = writers.foreign_entries(root) if root.is_dir() else None
    if foreign is None:
        # not a previous sweep: each variant folder is checked on its own, and nothing else is touched
        others = sorted(p.name for p in root.iterdir())
        raise DataError(f"{root} exists and is not a mixer sweep folder (it holds {', '.join(others[:6])}); "
                        "choose another --out")
    if not force:
        raise DataError(f"{root} holds a previous sweep; pass --force to replace its variants, or choose another --out")
    if foreign:
        raise DataError(f"{root} holds a previous sweep plus {', '.join(foreign[:6])} that mixer did not write; "
                        "nothing was touched. Move those away or choose another --out")
    old = json.loads((root / "manifest.json").read_text(encoding="utf-8")).get("mixtures") or {}
    for name in old:
        folder = root / name
        if name not in names and folder.is_dir() and writers.foreign_entries(folder) == []:
            shutil.rmtree(folder)


def shares_written(manifest: dict[str, Any]) -> dict[str, float]:
    """Each source's share of the mixture as written (as selected when the format drops nothing)."""
    export = (manifest.get("export") or {}).get("sources")
    return {name: (export[name]["realized_share_written"] if export else e["realized_share"])
            for name, e in manifest["sources"].items()}


def ratios_csv(outcomes: list[Outcome], sources: list[str], run_name: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run", "name", "index", *sources, "tokens", "rows"])
    for o in outcomes:
        if not o.built:
            continue
        assert o.manifest is not None
        shares = shares_written(o.manifest)
        train = o.manifest["totals"]["train"]
        rows = (o.manifest.get("export") or {}).get("rows", {}).get("train", train["rows"])
        w.writerow([run_name, o.variant.name, o.variant.index, *(f"{shares.get(s, 0.0):.6f}" for s in sources),
                    train["tokens"], rows])
    return buf.getvalue()


def sweep_manifest(recipe_path: str | Path, base: Recipe, spec: Spec, outcomes: list[Outcome],
                   root: Path) -> dict[str, Any]:
    entries = {}
    for o in outcomes:
        entry: dict[str, Any] = {"index": o.variant.index, "kind": o.variant.kind, "overrides": o.variant.overrides,
                                 "status": "built" if o.built else "infeasible"}
        if o.built:
            assert o.manifest is not None
            blob = (root / o.variant.name / "manifest.json").read_bytes()
            entry.update({"path": f"{o.variant.name}/", "manifest_sha256": hashlib.sha256(blob).hexdigest(),
                          "shares": shares_written(o.manifest), "totals": o.manifest["totals"],
                          "cache_hit": ((o.manifest.get("run") or {}).get("cache") or {}).get("hit")})
        else:
            entry["reason"] = o.reason
        entries[o.variant.name] = entry
    return {writers.MARKER: manifest_mod.versions()["mixer"], "recipe": str(recipe_path),
            "recipe_sha256": base.sha256, "sweep": _plain(spec), "mixtures": entries,
            "ratios_file": "ratios.csv"}


def _plain(spec: Spec) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(spec)


def table(outcomes: list[Outcome], sources: list[str]) -> str:
    """One line per variant: status, realised share of each source, tokens, rows, seconds."""
    header = ["variant", "status", *sources, "tokens", "rows", "seconds"]
    rows = [header]
    for o in outcomes:
        if o.built:
            assert o.manifest is not None
            shares = shares_written(o.manifest)
            train = o.manifest["totals"]["train"]
            rows.append([o.variant.name, "hit" if ((o.manifest.get("run") or {}).get("cache") or {}).get("hit")
                         else "built", *(f"{shares.get(s, 0.0):.1%}" for s in sources), f"{train['tokens']:,}",
                         f"{train['rows']:,}", f"{o.seconds:.1f}"])
        else:
            rows.append([o.variant.name, "infeasible", *("-" for _ in sources), "-", "-", f"{o.seconds:.1f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for o in outcomes:
        if not o.built:
            first = (o.reason or "").strip().splitlines()
            lines.append(f"infeasible: {o.variant.name}: {' '.join(x.strip() for x in first[:2])}")
    return "\n".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
