"""Build a mixture: the library's entry points over :mod:`mixer.engine`.

``build`` runs a recipe's stages on an executor (in memory by default, or streamed through a
spill folder) and returns a :class:`Mixture`, which a training script can use directly
(``to_datasets``, ``to_polars``, ``manifest``) or write to disk. ``build_all`` builds and
writes every mixture of a (staged) recipe; the CLI is a thin layer over these calls.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from mixer import engine, formats, writers
from mixer import engine as engine_mod  # `engine` is also build()'s keyword
from mixer import manifest as manifest_mod
from mixer import recipe as recipe_mod
from mixer.cache import Cache, default_root
from mixer.engine import Progress, StageEvent
from mixer.errors import DataError, RecipeError
from mixer.executors import CHUNK_ROWS, Executor, InMemory, LocalStreaming, MemoryOutput
from mixer.manifest import export_summary
from mixer.mixture import Log, Mixture, check_not_inside_inputs, no_log, finish, write_index, write_report_or_warn
from mixer.recipe import Recipe
from mixer.sources.read import ReadReport, read_source

__all__ = [
    "Built", "Log", "Mixture", "build", "build_all", "build_and_write", "check_not_inside_inputs", "convert",
    "finish", "log_progress", "stderr_log", "write_index",
]


def stderr_log(quiet: bool = False) -> Log:
    """Progress lines on stderr when it is a terminal; silent in CI, pipes and with --quiet."""
    if quiet or not sys.stderr.isatty():
        return no_log
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def log_progress(log: Log) -> Progress:
    """Stage events as one line each: ``read: 12,345 rows (1.2 s)``."""
    if log is no_log:
        return engine.silent

    def progress(event: StageEvent) -> None:
        if event.event == "start":
            log(f"{event.stage}: {event.rows:,} rows in")
        else:
            log(f"{event.stage}: {event.rows:,} rows out ({event.seconds:.1f} s)")

    return progress


def executor_for(name: str | Executor, chunk_rows: int = CHUNK_ROWS, spill: Path | None = None,
                 address: str | None = None) -> Executor:
    """An executor by name: ``memory`` (one chunk per source), ``stream`` (spilled chunks) or
    ``ray`` (spilled chunks, row-local steps as Ray tasks; ``address`` of a running cluster, else a
    local runtime; needs the ``ray`` extra)."""
    if isinstance(name, Executor):
        return name
    if name == "memory":
        return InMemory()
    if name == "stream":
        return LocalStreaming(chunk_rows, spill)
    if name == "ray":
        from mixer.executors_ray import RayExecutor

        return RayExecutor(chunk_rows, spill, address)
    raise RecipeError(f"executor: unknown executor {name!r}; expected memory, stream or ray")


def cache_for(cache_dir: str | Path | None = None, use: bool = True) -> Cache | None:
    """The prepared-source cache to use: ``cache_dir``, else ``MIXER_CACHE``, else none."""
    if not use:
        return None
    root = Path(cache_dir).expanduser() if cache_dir else default_root()
    return Cache(root) if root is not None else None


def _load(recipe: str | Path | Recipe, overrides: dict[str, Any] | list[str] | None, mixture: str | None) -> Recipe:
    if not isinstance(recipe, Recipe):
        return recipe_mod.load(recipe, overrides, mixture)
    if overrides:
        raise TypeError("overrides apply to a recipe path; pass them to recipe.load instead")
    return recipe


def build(recipe: str | Path | Recipe, overrides: dict[str, Any] | list[str] | None = None,
          *, mixture: str | None = None, executor: str | Executor = "memory", chunk_rows: int = CHUNK_ROWS,
          progress: Progress | None = None, log: Log = no_log, cache_dir: str | Path | None = None,
          cache: bool = True, engine: str | None = None, address: str | None = None) -> Mixture:
    """Build the mixture a recipe describes. Nothing is written.

    For a staged recipe, ``mixture`` names which ``[mixtures.NAME]`` to build. ``executor``
    decides where rows live while building: ``"memory"`` (default), ``"stream"``
    (``chunk_rows`` at a time through a temporary spill folder, for inputs larger than
    memory) or ``"ray"`` (as ``stream``, row-local steps as Ray tasks on the cluster at
    ``address``, else a local runtime); the result is the same. ``engine`` is another name for
    ``executor``. ``progress`` gets every stage's start and end.
    ``cache_dir`` (default: ``MIXER_CACHE``, else no cache) keeps each preparation so a
    re-mix (other weights, budgets or output) skips reading and tokenizing; ``cache=False``
    ignores it.
    """
    parsed = _load(recipe, overrides, mixture)
    return engine_mod.build(parsed, executor_for(engine or executor, chunk_rows, address=address),
                            progress or log_progress(log), cache_for(cache_dir, cache))


def build_and_write(recipe: Recipe, out_dir: Path, *, executor: str = "memory", chunk_rows: int = CHUNK_ROWS,
                    force: bool = False, dry_run: bool = False, progress: Progress | None = None,
                    cache: Cache | None = None, address: str | None = None) -> tuple[Mixture | None, dict[str, Any]]:
    """Build one mixture and write it to ``out_dir`` (all or nothing); with ``dry_run`` write
    nothing. A streaming build spills inside the output's staging folder and writes shards as
    they are assembled. Returns the mixture (None for a written streaming build: its rows are
    in the files) and the manifest."""
    check_not_inside_inputs(out_dir, recipe)
    if executor == "memory":
        mixture = engine.build(recipe, InMemory(), progress, cache)
        if not dry_run:
            mixture.write(out_dir, force=force)
        return mixture, mixture.manifest
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="mixer-dry-run-") as tmp:
            spill = executor_for(executor, chunk_rows, Path(tmp) / "spill", address)
            try:
                return None, engine.build(recipe, spill, progress, cache).manifest
            finally:
                spill.close()
    with writers.staged(out_dir, force) as stage:
        spill = executor_for(executor, chunk_rows, stage / ".spill", address)
        try:
            mixture = engine.build(recipe, spill, progress, cache)
            mixture.write_into(stage)
        finally:
            spill.close()
    return None, mixture.manifest


@dataclass
class Built:
    """One mixture of a ``build_all``: its folder (not written in a dry run) and its manifest."""

    name: str
    recipe: Recipe
    manifest: dict[str, Any]
    target: Path
    written: bool
    staged: bool = False  # one of several mixtures of a staged recipe
    mixture: Mixture | None = None  # in-memory builds only


@dataclass
class BuiltAll:
    mixtures: dict[str, Built] = field(default_factory=dict)
    index: Path | None = None  # the top-level manifest of a staged recipe
    staged: bool = False


def build_all(recipe: str | Path, overrides: list[str] | None = None, *, only: tuple[str, ...] | list[str] = (),
              out: Path | None = None, weights: str | None = None, force: bool = False, dry_run: bool = False, executor: str = "memory",
              chunk_rows: int = CHUNK_ROWS, progress: Progress | None = None,
              on_built: Callable[[Built], None] | None = None, cache_dir: str | Path | None = None,
              cache: bool = True, engine: str | None = None, address: str | None = None) -> BuiltAll:
    """Build and write every mixture of a recipe: one for a plain recipe, each ``[mixtures.NAME]``
    (or those in ``only``) of a staged one, each into its own folder under ``out`` plus a
    top-level ``manifest.json`` linking them. Output folders are checked before anything is
    read. ``weights`` (``FILE[:ROW]``, a single mixture only) sets source weights from a JSON
    object or a sweep's ratios.csv row. ``on_built`` is called after each mixture (e.g. to print
    its table). ``cache_dir``/``cache``, ``engine``/``address`` as for :func:`build`."""
    overrides = list(overrides or [])
    store = cache_for(cache_dir, cache)
    if weights:
        from mixer.weights import as_overrides, read_weights

        base = recipe_mod.load_all(recipe, overrides)
        if len(base) > 1:
            raise RecipeError("--weights applies to a single mixture; for a staged recipe set "
                              "--set mixtures.NAME.sources.SOURCE.weight=W")
        overrides += as_overrides(read_weights(weights), [s.name for s in next(iter(base.values())).sources])
    stages = recipe_mod.load_all(recipe, overrides)
    if only:
        unknown = [name for name in only if name not in stages]
        if unknown:
            raise RecipeError(f"--only {unknown[0]}: no such mixture in {recipe} (has: {', '.join(stages)})")
        stages = {name: r for name, r in stages.items() if name in only}
    result = BuiltAll(staged=any(r.staged for r in stages.values()))
    root = Path(out).expanduser().resolve() if out else None
    targets = {name: (root / name if result.staged else root) if root else r.output.dir for name, r in stages.items()}
    if not dry_run:  # fail before the slow part, not after it
        for name, r in stages.items():
            check_not_inside_inputs(targets[name], r)
            writers.check_target(targets[name], force)
    for name, parsed in stages.items():
        mixture, manifest = build_and_write(parsed, targets[name], executor=engine or executor, chunk_rows=chunk_rows,
                                            force=force, dry_run=dry_run, progress=progress, cache=store,
                                            address=address)
        built = Built(name, parsed, manifest, targets[name], not dry_run, result.staged, mixture)
        result.mixtures[name] = built
        if on_built is not None:
            on_built(built)
    written = [b.target for b in result.mixtures.values() if b.written]
    if result.staged and written:
        result.index = write_index(written[0].parent, recipe)
        if any(r.output.report for r in stages.values()):
            write_report_or_warn(written[0].parent)
    return result


def convert(source: str | Path, out: str | Path, to: str, *, from_format: str = "auto", kind: str | None = None,
            on_error: str = "fail", force: bool = False, strict: bool = False, chat_template: str | None = None,
            shard_rows: int = 250_000, rename_tools: bool = False, log: Log = no_log) -> tuple[Path, dict[str, Any]]:
    """Convert a dataset between formats with the same adapters and rules as a build, no mixing.

    Every split of ``source`` is converted (a mixer output's train and validation, a
    ``save_to_disk`` DatasetDict's splits). Returns the output folder and its manifest (rows
    read, rejected and exported per split, with reasons).
    """
    from mixer.sources.files import splits as local_splits

    out_dir = Path(out).expanduser().resolve()
    hub = str(source).startswith(recipe_mod.HUB_PREFIX)
    path = str(source) if hub else str(Path(source).expanduser().resolve())
    names = ["train"] if hub else local_splits(path)
    recipes = {name: recipe_mod.from_dict({
        "name": out_dir.name, "unit": "examples",
        "sources": {"input": {"path": path, "format": from_format, "on_error": on_error, "examples": 1,
                              "split": name, **({"kind": kind} if kind else {})}},
        "output": {"format": to, "shard_rows": shard_rows, "strict": strict, "rename_tools": rename_tools,
                   **({"chat_template": chat_template} if chat_template else {})},
    }, base_dir=Path.cwd()) for name in names}
    recipe = recipes[names[0]]
    check_not_inside_inputs(out_dir, recipe)
    writers.check_target(out_dir, force)
    frames: dict[str, pl.DataFrame] = {}
    reports: dict[str, ReadReport] = {}
    for name in names:
        log(f"reading {path} ({name})")
        try:
            frames[name], reports[name] = read_source(recipes[name].sources[0])
        except DataError as exc:
            raise DataError(str(exc).replace('set sources.input.on_error = "skip"', "pass --skip-bad")) from None
    output = MemoryOutput(frames, {}, {}, recipe.output)
    fmt = formats.FORMATS[recipe.output.format]
    renamed: dict[str, list[dict[str, Any]]] = {}
    unrendered: dict[str, list[dict[str, Any]]] = {}
    written: list[pl.DataFrame] = []
    if fmt.converts:
        options = formats.options(fmt, recipe.output, Path.cwd())
        for name, frame in frames.items():
            exported = formats.export(frame, fmt, **options)
            output.rows[name], output.rejects[name] = exported.part, exported.rejects
            renamed[name], unrendered[name] = exported.renamed, exported.unrendered
            written.append(engine.provenance(name, frame, exported.rejects))
    rejected: Counter[str] = Counter()
    repairs: Counter[str] = Counter()
    for report in reports.values():
        rejected.update(report.rejected)
        repairs.update(report.repairs)
    first = reports[names[0]]
    manifest: dict[str, Any] = {
        writers.MARKER: manifest_mod.versions()["mixer"],
        "converted": {"from": first.format, "to": recipe.output.format},
        "inputs": [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256}
                   for f in {f.path: f for r in reports.values() for f in r.inputs}.values()],
        "rows_read": sum(r.rows_read for r in reports.values()),
        "rows_rejected": sum(r.rows_rejected for r in reports.values()),
        "rejected_reasons": dict(sorted(rejected.items())), "repairs": dict(sorted(repairs.items())),
        "splits": {name: {"rows_read": r.rows_read, "rows_rejected": r.rows_rejected} for name, r in reports.items()},
        "versions": manifest_mod.versions(), "outputs": [], "rejects_file": None,
        **({"notes": notes} if (notes := list(dict.fromkeys(n for r in reports.values() for n in r.notes))) else {}),
    }
    if fmt.converts:
        manifest["export"] = export_summary({k: len(v) for k, v in output.rows.items()}, dict(output.rejects), recipe,
                                            renamed=renamed, unrendered=unrendered)
    output.provenance = pl.concat(written) if written else None
    rejects = [r for report in reports.values() for r in report.rejects]
    mixture = Mixture(recipe=recipe, manifest=manifest, output=output, rejects=rejects)
    return mixture.write(out_dir, force=force, log=log), manifest
