"""Build a mixture larger than memory: the layers of :mod:`mixer.pipeline`, chunk by chunk.

Rows pass through a spill folder inside the build's staging folder:

1. read each source in chunks; spill each canonical chunk; keep each row's dedup key;
2. mark exact duplicates on that key table (every row, four small columns);
3. per chunk: drop duplicates, decontaminate, transform, count tokens, split; spill the
   result and keep ``(id, n_tokens, chunk)`` per row;
4. allocate, select and order on those small tables, with the same functions as in memory;
5. per chunk: gather the selected rows (upsampled repeats re-augmented) into per-shard pieces;
6. per output shard: sort its pieces into the final order, convert, write.

Peak memory is about one chunk plus one output shard plus roughly 100 bytes per input row,
so the chunk size, not the source size, sets it. The rows, their order, the files and the
manifest are the same as ``pipeline.build(...).write(...)`` gives (tested). Near-duplicate
detection compares every row's text at once, so it is refused here.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixer import formats, mix, recipe as recipe_mod, schema, tokens, transforms, writers
from mixer import manifest as manifest_mod
from mixer.decontaminate import EvalIndex, build_index, decontaminate
from mixer.dedup import REMOVED, content_keys, mark_exact, removed_rows
from mixer.errors import RecipeError
from mixer.pipeline import (
    Log, _quiet, augmented_counts, check_not_inside_inputs, decontamination_summary, export_options, export_summary,
    finish, reaugment, source_entries,
)
from mixer.recipe import Recipe, Source
from mixer.sources.read import ReadReport, read_chunks
from mixer.split import split

SKINNY = {"id": pl.String, "n_tokens": pl.UInt32, "_chunk": pl.UInt32}  # per row, for selection
SIZES = {"n_tokens": pl.UInt32}  # per selected row, for the accounting


@dataclass
class _Source:
    """What the passes learn about one source: its read report, step totals and small tables."""

    src: Source
    prio: int
    chunks: int = 0
    report: ReadReport | None = None
    steps: list[transforms.Step] = field(default_factory=list)
    flagged: int = 0
    train: list[pl.DataFrame] = field(default_factory=list)
    held: list[pl.DataFrame] = field(default_factory=list)


def build_streaming(recipe: str | Path | Recipe, out: str | Path | None = None, *, force: bool = False,
                    chunk_rows: int = 100_000, dry_run: bool = False,
                    log: Log = _quiet) -> tuple[Path, dict[str, Any]]:
    """Build and write the mixture a recipe describes, holding one chunk of rows at a time.

    Returns the output folder and the manifest. With ``dry_run`` everything but the final
    files is done (in a temporary folder) and nothing is written.
    """
    if not isinstance(recipe, Recipe):
        recipe = recipe_mod.load(recipe)
    if recipe.dedup.near is not None:
        raise RecipeError("dedup.near: near-duplicate detection compares every row's text at once, which a "
                          "streaming build does not hold; build in memory (without --stream) or remove dedup.near")
    if chunk_rows < 1:
        raise RecipeError(f"chunk_rows must be at least 1, got {chunk_rows}")
    out_dir = Path(out).expanduser().resolve() if out else recipe.output.dir
    check_not_inside_inputs(out_dir, recipe)
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="mixer-dry-run-") as tmp:
            manifest = _run(recipe, Path(tmp), chunk_rows, log, write=False)
        return out_dir, manifest
    with writers.staged(out_dir, force) as stage:
        log(f"building {out_dir} in chunks of {chunk_rows:,} rows")
        manifest = _run(recipe, stage, chunk_rows, log, write=True)
    return out_dir, manifest


def _run(recipe: Recipe, stage: Path, chunk_rows: int, log: Log, *, write: bool) -> dict[str, Any]:
    enc = tokens.encoding(recipe.tokenizer)
    base_dir = recipe.path.resolve().parent if recipe.path else Path.cwd()
    spill = stage / ".spill"
    spill.mkdir()
    sources = [_Source(src, prio) for prio, src in enumerate(recipe.sources)]

    dups = _duplicates([_spill_source(s, spill, chunk_rows, recipe, log) for s in sources], recipe)
    index = build_index(recipe.decontaminate) if recipe.decontaminate is not None else None
    removed_parts: list[pl.DataFrame] = []
    for s in sources:
        for c in range(s.chunks):
            log(f"cleaning, augmenting and counting {s.src.name}: chunk {c + 1} of {s.chunks}")
            removed_parts += _prepare_chunk(s, c, spill, dups, index, recipe, base_dir, enc)
    removed = _order_removed(removed_parts)

    train = {s.src.name: _concat(s.train, SKINNY) for s in sources}
    held = {s.src.name: _concat(s.held, SKINNY) for s in sources}
    for s in sources:
        s.train, s.held = [], []
    chosen, allocations = mix.allocate(recipe, train)
    val_chosen = mix.select_validation(chosen, held, recipe)
    plans = {"train": _plan(chosen, recipe, sources), "validation": _plan(val_chosen, recipe, sources)}
    del chosen, val_chosen
    # from here on the accounting needs only sizes: drop the ids
    train = {name: f.select("n_tokens") for name, f in train.items()}
    held = {name: f.select("n_tokens") for name, f in held.items()}

    log("gathering the selected rows")
    chosen, val_chosen, augmented = _gather_all(sources, spill, plans, recipe, base_dir, enc)
    entries = source_entries(
        recipe, {s.src.name: s.report for s in sources}, {s.src.name: s.steps for s in sources},  # type: ignore[misc]
        allocations, chosen, train, held, val_chosen, removed, {s.src.name: s.flagged for s in sources}, augmented)
    totals = {"train": _total(chosen), "validation": _total(val_chosen)}
    manifest = manifest_mod.build_manifest(recipe, enc.name, entries, totals)
    if index is not None:
        manifest["decontamination"] = decontamination_summary(index)

    files, export_rejects = _write_shards(plans, spill, recipe, base_dir, stage, write, log)
    if recipe.output.format != "canonical":
        manifest["export"] = export_summary(
            {split_name: sum(f.rows for f in files if f.split == split_name) for split_name in export_rejects},
            export_rejects, recipe, manifest["sources"])
    manifest_mod.check(manifest)
    shutil.rmtree(spill)
    if write:
        rejects = [r.__dict__ for s in sources for r in s.report.rejects]  # type: ignore[union-attr]
        finish(stage, recipe, manifest, files, rejects + [r for rs in export_rejects.values() for r in rs], removed)
    return manifest


def _spill_source(s: _Source, spill: Path, chunk_rows: int, recipe: Recipe, log: Log) -> pl.DataFrame:
    """Pass 1: read ``s`` chunk by chunk into the spill folder; return its rows' dedup keys."""
    log(f"reading {s.src.name} from {s.src.path}")
    s.report, chunks = read_chunks(s.src, chunk_rows)
    keyed = recipe.dedup.exact
    parts = []
    for c, chunk in enumerate(chunks):
        log(f"  {s.src.name}: read chunk {c + 1} ({s.report.rows_read:,} records so far)")  # type: ignore[union-attr]
        chunk.write_parquet(_path(spill, s, c, "raw"))
        s.chunks = c + 1
        if keyed:
            parts.append(chunk.select("id", _prio=pl.lit(s.prio, pl.UInt32), _chunk=pl.lit(c, pl.UInt32),
                                      _key=content_keys(chunk, recipe.dedup.key)))
    return pl.concat(parts) if parts else pl.DataFrame()


def _duplicates(keys: list[pl.DataFrame], recipe: Recipe) -> pl.DataFrame:
    """Pass 2: the exact copies across all sources: ``id, _prio, _chunk``, the surviving copy's
    id ``_kept`` and ``_order``, their position in the in-memory build's removed list."""
    keys = [k for k in keys if k.height]
    if not recipe.dedup.exact or not keys:
        return pl.DataFrame(schema={"id": pl.String, "_prio": pl.UInt32, "_chunk": pl.UInt32, "_kept": pl.String,
                                    "_order": pl.UInt32})
    marked = mark_exact(pl.concat(keys), recipe.dedup)
    return marked.with_row_index("_order").filter("_dup").select("id", "_prio", "_chunk", "_kept", "_order")


def _prepare_chunk(s: _Source, c: int, spill: Path, dups: pl.DataFrame, index: EvalIndex | None, recipe: Recipe,
                   base_dir: Path, enc: Any) -> list[pl.DataFrame]:
    """Pass 3 on one chunk: clean, transform, count, split; returns the removed-row records."""
    name = s.src.name
    chunk = pl.read_parquet(_path(spill, s, c, "raw"))
    mine = dups.filter((pl.col("_prio") == s.prio) & (pl.col("_chunk") == c))
    removed = []
    if mine.height:
        hit = chunk.join(mine.select("id", "_kept", "_order"), on="id", how="inner")
        removed.append(removed_rows(hit, "deduplicated", pl.lit("exact duplicate of ") + pl.col("_kept"))
                       .with_columns(_order=hit.get_column("_order")))
        chunk = chunk.join(mine.select("id"), on="id", how="anti", maintain_order="left")
    if index is not None:
        assert recipe.decontaminate is not None
        cleaned, dropped, flagged = decontaminate({name: chunk}, recipe.decontaminate, index)
        chunk = cleaned[name]
        s.flagged += flagged[name]
        removed.append(dropped.with_columns(_order=pl.lit(None, pl.UInt32)))
    if s.src.transforms:
        chunk.write_parquet(_path(spill, s, c, "raw"))  # repeats are re-augmented from the cleaned rows
    frame, steps = transforms.apply(chunk, s.src.transforms, seed=recipe.seed, source=name, base_dir=base_dir,
                                    encoding=enc)
    s.steps = steps if not s.steps else [
        transforms.Step(a.position, a.type, a.rows_in + b.rows_in, a.rows_out + b.rows_out, a.augmented + b.augmented)
        for a, b in zip(s.steps, steps)
    ]
    frame = tokens.count(frame, enc)
    frame.write_parquet(_path(spill, s, c, "ready"))
    train, held = split(frame, recipe.validation, recipe.seed)
    s.train.append(train.select("id", "n_tokens", _chunk=pl.lit(c, pl.UInt32)))
    s.held.append(held.select("id", "n_tokens", _chunk=pl.lit(c, pl.UInt32)))
    return removed


def _order_removed(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Removed rows in the in-memory build's order: duplicates in key order, then decontaminated."""
    if not parts:
        return REMOVED.clear()
    allparts = pl.concat(parts)
    copies = allparts.filter(pl.col("_order").is_not_null()).sort("_order")
    return pl.concat([copies, allparts.filter(pl.col("_order").is_null())]).select(REMOVED.columns)


def _plan(chosen: dict[str, pl.DataFrame], recipe: Recipe, sources: list[_Source]) -> pl.DataFrame:
    """Every selected row of a split with its final position and output shard."""
    prio = {s.src.name: s.prio for s in sources}
    combined = pl.concat([f.with_columns(_prio=pl.lit(prio[name], pl.UInt32)) for name, f in chosen.items()])
    order = mix.order(combined.get_column("id"), recipe.seed)
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    offsets = np.array([o for o, _ in writers.shard_plan(combined.height, recipe.output.shard_rows)], dtype=np.int64)
    return combined.select(
        "id", "_prio", "_chunk",
        _pos=pl.Series(position),
        _shard=pl.Series(np.searchsorted(offsets, position, side="right") - 1 if len(offsets) else position),
    )


def _gather_all(sources: list[_Source], spill: Path, plans: dict[str, pl.DataFrame], recipe: Recipe,
                base_dir: Path, enc: Any) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame],
                                                   dict[str, dict[str, int]]]:
    """Pass 5 over every chunk; returns the sizes of the selected rows (train, validation) per
    source and how many selected train rows each transform step augmented."""
    sizes: dict[str, dict[str, list[pl.DataFrame]]] = {"train": {}, "validation": {}}
    augmented: dict[str, dict[str, int]] = {}
    for s in sources:
        name = s.src.name
        augmented[name] = {st.label: 0 for st in s.steps}
        for split_name in sizes:
            sizes[split_name][name] = []
        for c in range(s.chunks):
            for split_name, part in _gather(s, c, spill, plans, recipe, base_dir, enc).items():
                sizes[split_name][name].append(part.select("n_tokens"))
                if split_name == "train":
                    for label, n in augmented_counts(part, s.steps).items():
                        augmented[name][label] += n
    train, validation = ({name: _concat(parts, SIZES) for name, parts in sizes[k].items()}
                         for k in ("train", "validation"))
    return train, validation, augmented


def _gather(s: _Source, c: int, spill: Path, plans: dict[str, pl.DataFrame], recipe: Recipe, base_dir: Path,
            enc: Any) -> dict[str, pl.DataFrame]:
    """Pass 5 on one chunk: the selected rows (repeats re-augmented), spilled per output shard."""
    ready = None
    out = {}
    for split_name, plan in plans.items():
        mine = plan.filter((pl.col("_prio") == s.prio) & (pl.col("_chunk") == c)).select("id", "_pos", "_shard")
        if not mine.height:
            continue
        if ready is None:
            ready = pl.read_parquet(_path(spill, s, c, "ready"))
        mine = mine.with_columns(_base=pl.col("id").str.replace(r"#\d+$", ""))
        is_repeat = pl.col("id") != pl.col("_base")
        first = mine.filter(~is_repeat).join(ready, on="id", how="inner").drop("_base")
        repeats = mine.filter(is_repeat)
        if repeats.height and s.src.transforms:
            raw = pl.read_parquet(_path(spill, s, c, "raw"))
            fresh = reaugment(repeats.get_column("id"), raw, s.src, recipe.seed, base_dir, enc)
            again = repeats.select("id", "_pos", "_shard").join(fresh, on="id", how="inner")
        else:
            again = repeats.join(ready.rename({"id": "_base"}), on="_base", how="inner").drop("_base")
        rows = pl.concat([first, again.select(first.columns)]) if repeats.height else first
        assert rows.height == mine.height, f"{s.src.name} chunk {c}: selected rows went missing"
        for (shard,), part in rows.partition_by("_shard", as_dict=True).items():
            folder = spill / "out" / split_name / f"{shard:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            part.drop("_shard").write_parquet(folder / f"{s.prio}-{c}.parquet")
        out[split_name] = rows.select(schema.COLUMNS)
    return out


def _write_shards(plans: dict[str, pl.DataFrame], spill: Path, recipe: Recipe, base_dir: Path, stage: Path,
                  write: bool, log: Log) -> tuple[list[writers.OutputFile], dict[str, list[dict[str, Any]]]]:
    """Pass 6: each output shard's pieces in final order, converted and written."""
    output = recipe.output
    fmt = formats.FORMATS[output.format]
    options = export_options(recipe, base_dir) if fmt.convert is not None else {}
    files: list[writers.OutputFile] = []
    rejects: dict[str, list[dict[str, Any]]] = {}
    for split_name, plan in plans.items():
        if split_name == "validation" and recipe.validation <= 0:
            continue
        rejects[split_name] = []
        shards = writers.shard_plan(plan.height, output.shard_rows)
        for i in range(len(shards)):
            pieces = sorted((spill / "out" / split_name / f"{i:05d}").glob("*.parquet"))
            frame = pl.read_parquet(pieces).rechunk().sort("_pos").select(schema.COLUMNS)
            frame = schema.check(frame, "streaming write")
            if fmt.convert is None:
                part: pl.DataFrame | list[dict[str, Any]] = frame
            else:
                exported = formats.export(frame, fmt, **options)
                rejects[split_name] += exported.rejects
                part = exported.rows
            if write:
                log(f"writing {split_name} shard {i + 1} of {len(shards)}")
                files.append(writers.write_shard(part, stage, split_name, i, len(shards),
                                                 fmt.suffix if fmt.convert else output.file,
                                                 fmt.features() if fmt.features else None))
            else:
                files.append(writers.OutputFile("", split_name, len(part) if isinstance(part, list) else part.height,
                                                0, ""))
    if write:
        (stage / "data").mkdir(exist_ok=True)
    return files, rejects


def _path(spill: Path, s: _Source, c: int, kind: str) -> Path:
    return spill / f"{s.prio}-{c}.{kind}.parquet"


def _concat(parts: list[pl.DataFrame], columns: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.concat(parts) if parts else pl.DataFrame(schema=columns)


def _total(frames: dict[str, pl.DataFrame]) -> dict[str, int]:
    return {"rows": sum(f.height for f in frames.values()),
            "tokens": int(sum(mix.amount(f, "tokens") for f in frames.values()))}

