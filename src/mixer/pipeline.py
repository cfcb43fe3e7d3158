"""Build a mixture: recipe -> sources -> transforms -> split -> select -> order -> write.

``build`` does everything in memory and returns a :class:`Mixture`, which a training script
can use directly (``to_datasets``, ``to_polars``, ``manifest``) or write to disk. The CLI is
a thin layer over these calls.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from mixer import formats
from mixer import manifest as manifest_mod
from mixer import mix, recipe as recipe_mod, schema, tokens, transforms, writers
from mixer.errors import DataError, OutputError
from mixer.recipe import Recipe, Source
from mixer.sources.read import ReadReport, Reject, read_source
from mixer.split import split
from mixer.decontaminate import EvalIndex, build_index, decontaminate
from mixer.dedup import REMOVED, deduplicate

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def stderr_log(quiet: bool = False) -> Log:
    """Progress lines on stderr when it is a terminal; silent in CI, pipes and with --quiet."""
    if quiet or not sys.stderr.isatty():
        return _quiet
    return lambda msg: print(msg, file=sys.stderr, flush=True)


@dataclass
class Mixture:
    """A built mixture: its splits as canonical frames, and the manifest that accounts for them."""

    recipe: Recipe
    splits: dict[str, pl.DataFrame]
    manifest: dict[str, Any]
    rejects: list[Reject] = field(default_factory=list)
    removed: pl.DataFrame = field(default_factory=REMOVED.clear)
    exported: dict[str, formats.Exported] = field(default_factory=dict)  # empty for canonical output

    def to_polars(self) -> dict[str, pl.DataFrame]:
        """The splits (``train``, and ``validation`` when the recipe asks for one)."""
        return dict(self.splits)

    def to_datasets(self) -> Any:
        """The splits as a ``datasets.DatasetDict`` in the recipe's output format, ready for a trainer."""
        import datasets

        if not self.exported:
            return datasets.DatasetDict(
                {name: datasets.Dataset(frame.to_arrow()) for name, frame in self.splits.items() if frame.height})
        fmt = formats.FORMATS[self.recipe.output.format]
        features = fmt.features() if fmt.features else None
        return datasets.DatasetDict({
            name: datasets.Dataset.from_list(ex.rows, features=features, on_mixed_types=None if features else "use_json")
            for name, ex in self.exported.items() if ex.rows
        })

    def table(self) -> str:
        return manifest_mod.table(self.manifest)

    def write(self, out: str | Path | None = None, *, force: bool = False, log: Log = _quiet) -> Path:
        """Write data files, ``manifest.json`` and (if any) ``rejects.jsonl``; all or nothing."""
        out_dir = Path(out).expanduser().resolve() if out else self.recipe.output.dir
        check_not_inside_inputs(out_dir, self.recipe)
        with writers.staged(out_dir, force) as stage:
            log(f"writing {out_dir}")
            output = self.recipe.output
            if self.exported:
                fmt = formats.FORMATS[output.format]
                files = writers.write_rows({k: v.rows for k, v in self.exported.items()}, stage, fmt.suffix,
                                           output.shard_rows, fmt.features() if fmt.features else None)
            else:
                files = writers.write_splits(self.splits, stage, output.file, output.shard_rows)
            rejects = [r.__dict__ for r in self.rejects] + [r for ex in self.exported.values() for r in ex.rejects]
            finish(stage, self.recipe, self.manifest, files, rejects, self.removed)
        return out_dir


def finish(stage: Path, recipe: Recipe, manifest: dict[str, Any], files: list[writers.OutputFile],
           rejects: list[dict[str, Any]], removed: pl.DataFrame) -> None:
    """The files beside the data: dataset card (trainer formats), rejects, removed rows, manifest."""
    output = recipe.output
    if output.format != "canonical":
        fmt = formats.FORMATS[output.format]
        (stage / "README.md").write_text(
            formats.dataset_card(recipe.name, fmt, files), encoding="utf-8")
        if output.format == "llama-factory":
            info = formats.llama_factory.dataset_info(recipe.name, {f.split: f.path for f in files})
            (stage / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    manifest["outputs"] = [f.as_dict() for f in files]
    if rejects:
        writers.write_jsonl(stage / "rejects.jsonl", rejects)
        manifest["rejects_file"] = "rejects.jsonl"
    if removed.height:
        removed.write_ndjson(stage / "removed.jsonl")
        manifest["removed_file"] = "removed.jsonl"
    (stage / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def write_index(root: Path, recipe_path: str | Path) -> Path:
    """The top-level manifest of a staged build: each mixture folder found under ``root`` with its
    manifest's hash, format and totals. Written atomically (temp file, then rename)."""
    stages = {}
    for manifest_path in sorted(root.glob("*/manifest.json")):
        blob = manifest_path.read_bytes()
        manifest = json.loads(blob)
        stages[manifest_path.parent.name] = {
            "path": f"{manifest_path.parent.name}/",
            "manifest_sha256": hashlib.sha256(blob).hexdigest(),
            "format": (manifest.get("export") or {}).get("format", "canonical"),
            "recipe_sha256": manifest["recipe"]["sha256"],
            "totals": manifest["totals"],
        }
    index = {writers.MARKER: manifest_mod.versions()["mixer"], "recipe": str(recipe_path), "mixtures": stages}
    target = root / "manifest.json"
    tmp = root / ".manifest.json.tmp"
    tmp.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def check_not_inside_inputs(out_dir: Path, recipe: Recipe) -> None:
    """Before building: the output folder must not hold (or be) any local source path."""
    for src in recipe.sources:
        if not src.is_hub:
            _refuse_path(out_dir, Path(src.path.split("*")[0]), src.name)


def _refuse_path(out_dir: Path, path: Path, name: str) -> None:
    path = path.resolve() if path.exists() else path
    if out_dir == path or out_dir in path.parents:
        raise OutputError(f"output folder {out_dir} contains an input of source {name!r} ({path}); "
                          "writing there would replace the data being read. Choose another --out")
    if path.is_dir() and path in out_dir.parents:
        raise OutputError(f"output folder {out_dir} is inside the input folder of source {name!r} ({path}); "
                          "the next build would read its own output. Choose another --out")


def build(recipe: str | Path | Recipe, overrides: dict[str, Any] | list[str] | None = None,
          *, mixture: str | None = None, log: Log = _quiet) -> Mixture:
    """Build the mixture a recipe describes, in memory. Nothing is written.

    For a staged recipe, ``mixture`` names which ``[mixtures.NAME]`` to build.
    """
    if not isinstance(recipe, Recipe):
        recipe = recipe_mod.load(recipe, overrides, mixture)
    elif overrides:
        raise TypeError("overrides apply to a recipe path; pass them to recipe.load instead")
    enc = tokens.encoding(recipe.tokenizer)

    base_dir = recipe.path.resolve().parent if recipe.path else Path.cwd()
    reports: dict[str, ReadReport] = {}
    steps: dict[str, list[transforms.Step]] = {}
    raw: dict[str, pl.DataFrame] = {}
    train: dict[str, pl.DataFrame] = {}
    held: dict[str, pl.DataFrame] = {}
    for src in recipe.sources:
        log(f"reading {src.name} from {src.path}")
        raw[src.name], reports[src.name] = read_source(src)
    raw, removed, flagged, eval_index = _clean(raw, recipe, log)
    for src in recipe.sources:
        frame, steps[src.name] = transforms.apply(raw[src.name], src.transforms, seed=recipe.seed,
                                                  source=src.name, base_dir=base_dir, encoding=enc)
        log(f"counting tokens for {src.name}: {frame.height:,} rows")
        frame = tokens.count(frame, enc)
        train[src.name], held[src.name] = split(frame, recipe.validation, recipe.seed)

    chosen, allocations = mix.allocate(recipe, train)
    val_chosen = mix.select_validation(chosen, held, recipe)
    for src in recipe.sources:
        if src.transforms:
            chosen[src.name] = _refresh_repeats(chosen[src.name], raw[src.name], src, recipe.seed, base_dir, enc)
    augmented = {name: augmented_counts(chosen[name], steps[name]) for name in chosen}
    entries = source_entries(recipe, reports, steps, allocations, chosen, train, held, val_chosen, removed, flagged,
                             augmented)
    splits = {"train": _combine(chosen, recipe)}
    if recipe.validation > 0:
        splits["validation"] = _combine(val_chosen, recipe)
    totals = {name: {"rows": f.height, "tokens": int(mix.amount(f, "tokens"))} for name, f in splits.items()}
    totals.setdefault("validation", {"rows": 0, "tokens": 0})
    manifest = manifest_mod.build_manifest(recipe, enc.name, entries, totals)
    if eval_index is not None:
        manifest["decontamination"] = decontamination_summary(eval_index)
    exported = _export(splits, recipe, base_dir)
    if exported:
        manifest["export"] = export_summary(
            {k: len(v.rows) for k, v in exported.items()}, {k: v.rejects for k, v in exported.items()}, recipe,
            manifest["sources"])
    manifest_mod.check(manifest)
    rejects = [r for rep in reports.values() for r in rep.rejects]
    return Mixture(recipe=recipe, splits=splits, manifest=manifest, rejects=rejects, removed=removed,
                   exported=exported)


def decontamination_summary(index: EvalIndex) -> dict[str, Any]:
    """The manifest's record of what rows were checked against."""
    return {"against": [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in index.inputs],
            "eval_texts": index.texts, "eval_ngrams": int(len(index.hashes))}


def augmented_counts(frame: pl.DataFrame, steps: list[transforms.Step]) -> dict[str, int]:
    """Rows of ``frame`` each transform step augmented (from the ``aug.N.`` keys in meta)."""
    meta = frame.get_column("meta")
    return {s.label: int(meta.str.contains(f'"aug.{s.position}.', literal=True).sum()) for s in steps}


def source_entries(recipe: Recipe, reports: dict[str, ReadReport], steps: dict[str, list[transforms.Step]],
                   allocations: list[mix.Allocation], chosen: dict[str, pl.DataFrame],
                   train: dict[str, pl.DataFrame], held: dict[str, pl.DataFrame],
                   val_chosen: dict[str, pl.DataFrame], removed: pl.DataFrame,
                   flagged: dict[str, int], augmented: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    """The manifest's per-source accounting, from what each step reported.

    Frames need only ``n_tokens`` (sizes and token sums), so a streaming build passes small tables.
    """
    train_total = sum(mix.amount(f, recipe.unit) for f in chosen.values())
    entries = {}
    for alloc in allocations:
        name = alloc.source
        got = chosen[name]
        buckets = removed.filter(pl.col("source") == name).get_column("bucket")
        alloc = dataclasses.replace(alloc, selected_rows=got.height, selected_tokens=int(mix.amount(got, "tokens")))
        entries[name] = manifest_mod.source_entry(
            reports[name], steps[name], alloc,
            cleaned={"rows_deduplicated": int((buckets == "deduplicated").sum()),
                     "rows_decontaminated": int((buckets == "decontaminated").sum()),
                     "rows_flagged_contaminated": flagged.get(name, 0)},
            split_rows={"train": train[name].height, "validation": held[name].height},
            tokens_available=int(mix.amount(train[name], "tokens") + mix.amount(held[name], "tokens")),
            validation={"rows": val_chosen[name].height, "tokens": int(mix.amount(val_chosen[name], "tokens"))},
            realized_share=mix.amount(got, recipe.unit) / train_total if train_total else 0.0,
            augmented_selected=augmented[name],
        )
    return entries


def export_summary(rows: dict[str, int], rejects: dict[str, list[dict[str, Any]]], recipe: Recipe,
                   sources: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Rows written and rejected per split (and per source, given the manifest's source entries);
    under ``strict`` any rejection fails the build."""
    reasons = Counter(r["reason"] for split in rejects.values() for r in split)
    if reasons and recipe.output.strict:
        raise DataError(f"--strict: {reasons.total()} rows cannot be written as {recipe.output.format}: "
                        + "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(5)))
    summary = manifest_mod.export_entry(recipe.output.format, rows, rejects, sources or {}, recipe.unit)
    if sources is None:
        del summary["sources"]
    return summary


def _export(splits: dict[str, pl.DataFrame], recipe: Recipe, base_dir: Path) -> dict[str, formats.Exported]:
    """Convert the splits to the output format (nothing to do for canonical rows)."""
    fmt = formats.FORMATS[recipe.output.format]
    if fmt.convert is None:
        return {}
    options = export_options(recipe, base_dir)
    return {name: formats.export(frame, fmt, **options) for name, frame in splits.items()}


def export_options(recipe: Recipe, base_dir: Path) -> dict[str, Any]:
    """Options of the output format's converter (the chat template of ``text``)."""
    if recipe.output.format == "text":
        return {"template": formats.text.load_template(recipe.output.chat_template, base_dir)}
    return {}


def _clean(raw: dict[str, pl.DataFrame], recipe: Recipe, log: Log) -> tuple[
        dict[str, pl.DataFrame], pl.DataFrame, dict[str, int], EvalIndex | None]:
    """Mixture-wide dedup, then decontamination, on the rows as read (before augmentation)."""
    log("deduplicating")
    frames, removed = deduplicate(raw, recipe.dedup)
    if recipe.decontaminate is None:
        return frames, removed, {}, None
    log(f"decontaminating against {len(recipe.decontaminate.against)} evaluation path(s)")
    index = build_index(recipe.decontaminate)
    frames, dropped, flagged = decontaminate(frames, recipe.decontaminate, index)
    return frames, pl.concat([removed, dropped]), flagged, index


def _refresh_repeats(chosen: pl.DataFrame, raw: pl.DataFrame, src: Source, seed: int, base_dir: Path,
                     enc: Any) -> pl.DataFrame:
    """Re-run transforms on upsampled copies (ids ``...#r``) so each repeat gets fresh draws.

    Selection ran on first copies (repeat 0); a repeat starts again from the untransformed
    row under its own id, so its augmentation is independent of the first copy's.
    """
    is_repeat = chosen.get_column("id").str.contains("#", literal=True)
    if not is_repeat.any():
        return chosen
    fresh = reaugment(chosen.get_column("id").filter(is_repeat), raw, src, seed, base_dir, enc)
    return pl.concat([chosen.filter(~is_repeat), fresh])


def reaugment(repeat_ids: pl.Series, raw: pl.DataFrame, src: Source, seed: int, base_dir: Path,
              enc: Any) -> pl.DataFrame:
    """Upsampled copies (``...#r`` ids) of rows of ``raw``, transformed afresh and counted."""
    repeats = pl.DataFrame({"id": repeat_ids}).with_columns(_base=pl.col("id").str.replace(r"#\d+$", ""))
    fresh = (
        repeats.join(raw.rename({"id": "_base"}), on="_base", how="inner", maintain_order="left")
        .drop("_base").select(schema.COLUMNS)
    )
    fresh, _ = transforms.apply(fresh, src.transforms, seed=seed, source=src.name, base_dir=base_dir, encoding=enc)
    return tokens.count(fresh, enc)


def _combine(parts: dict[str, pl.DataFrame], recipe: Recipe) -> pl.DataFrame:
    frames = [f for f in parts.values() if f.height]
    combined = pl.concat(frames) if frames else schema.empty()
    return mix.shuffle(combined, recipe.seed)


def convert(source: str | Path, out: str | Path, to: str, *, from_format: str = "auto", kind: str | None = None,
            on_error: str = "fail", force: bool = False, strict: bool = False, chat_template: str | None = None,
            shard_rows: int = 250_000, log: Log = _quiet) -> tuple[Path, dict[str, Any]]:
    """Convert a dataset between formats with the same adapters and rules as a build, no mixing.

    Every split of ``source`` is converted (a mixer output's train and validation, a
    ``save_to_disk`` DatasetDict's splits). Returns the output folder and its manifest (rows
    read, rejected and exported per split, with reasons).
    """
    from mixer.sources.files import splits as local_splits
    from mixer.writers import check_target

    out_dir = Path(out).expanduser().resolve()
    hub = str(source).startswith(recipe_mod.HUB_PREFIX)
    path = str(source) if hub else str(Path(source).expanduser().resolve())
    names = ["train"] if hub else local_splits(path)
    recipes = {name: recipe_mod.from_dict({
        "name": out_dir.name, "unit": "examples",
        "sources": {"input": {"path": path, "format": from_format, "on_error": on_error, "examples": 1,
                              "split": name, **({"kind": kind} if kind else {})}},
        "output": {"format": to, "shard_rows": shard_rows, "strict": strict,
                   **({"chat_template": chat_template} if chat_template else {})},
    }, base_dir=Path.cwd()) for name in names}
    recipe = recipes[names[0]]
    check_not_inside_inputs(out_dir, recipe)
    check_target(out_dir, force)
    frames: dict[str, pl.DataFrame] = {}
    reports: dict[str, ReadReport] = {}
    for name in names:
        log(f"reading {path} ({name})")
        try:
            frames[name], reports[name] = read_source(recipes[name].sources[0])
        except DataError as exc:
            raise DataError(str(exc).replace('set sources.input.on_error = "skip"', "pass --skip-bad")) from None
    exported = _export(frames, recipe, Path.cwd())
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
    if exported:
        manifest["export"] = export_summary(
            {k: len(v.rows) for k, v in exported.items()}, {k: v.rejects for k, v in exported.items()}, recipe)
    rejects = [r for report in reports.values() for r in report.rejects]
    mixture = Mixture(recipe=recipe, splits=frames, manifest=manifest, rejects=rejects, exported=exported)
    return mixture.write(out_dir, force=force, log=log), manifest
