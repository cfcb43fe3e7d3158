"""A built mixture and the files it is written as, whichever executor built it."""

from __future__ import annotations

import inspect
import sys

import hashlib
import json
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from mixer import formats
from mixer import manifest as manifest_mod
from mixer import manifest_schema
from mixer import writers
from mixer.dedup import REMOVED
from mixer.errors import DataError, OutputError
from mixer.executors import Output
from mixer.recipe import Recipe
from mixer.sources.read import Reject

Log = Callable[[str], None]


def no_log(_: str) -> None:
    return None


@dataclass
class Mixture:
    """A built mixture: its splits, and the manifest that accounts for them.

    The rows live where the executor left them (in memory, or in a spill folder for a
    streaming build); ``to_polars``, ``to_datasets`` and ``write`` work the same for both.
    """

    recipe: Recipe
    manifest: dict[str, Any]
    output: Output
    rejects: list[Reject] = field(default_factory=list)
    removed: pl.DataFrame = field(default_factory=REMOVED.clear)

    @property
    def splits(self) -> dict[str, pl.DataFrame]:
        return self.output.frames()

    @property
    def exported(self) -> dict[str, formats.Exported]:
        """The splits in the output format (empty for canonical output)."""
        return self.output.exported()

    def to_polars(self) -> dict[str, pl.DataFrame]:
        """The splits (``train``, and ``validation`` when the recipe asks for one)."""
        return self.splits

    def to_datasets(self) -> Any:
        """The splits as a ``datasets.DatasetDict`` in the recipe's output format, ready for a trainer."""
        import datasets

        exported = self.exported
        if not exported:
            return datasets.DatasetDict(
                {name: datasets.Dataset(frame.to_arrow()) for name, frame in self.splits.items() if frame.height})
        fmt = formats.FORMATS[self.recipe.output.format]
        features = fmt.features() if fmt.features else None
        # on_mixed_types exists from datasets 5; older versions take the rows as they are
        mixed = {} if features else {"on_mixed_types": "use_json"}
        if mixed and "on_mixed_types" not in inspect.signature(datasets.Dataset.from_list).parameters:
            mixed = {}
        return datasets.DatasetDict({
            name: datasets.Dataset(ex.table, info=datasets.DatasetInfo(features=features)) if ex.table is not None
            else datasets.Dataset.from_list(ex.rows, features=features, **mixed)
            for name, ex in exported.items() if len(ex)
        })

    def table(self) -> str:
        return manifest_mod.table(self.manifest)

    def write(self, out: str | Path | None = None, *, force: bool = False, log: Log = no_log) -> Path:
        """Write data files, ``manifest.json`` and (if any) ``rejects.jsonl``; all or nothing."""
        out_dir = Path(out).expanduser().resolve() if out else self.recipe.output.dir
        check_not_inside_inputs(out_dir, self.recipe)
        with writers.staged(out_dir, force) as stage:
            log(f"writing {out_dir}")
            self.write_into(stage)
        return out_dir

    def write_into(self, stage: Path) -> None:
        """Fill a staging folder: the data files, then the files beside them."""
        files = self.output.write(stage)
        if formats.FORMATS[self.recipe.output.format].one_file_per_split:
            files = writers.join_splits(files, stage)
        rejects = [r.__dict__ for r in self.rejects] + [r for split in self.output.rejects.values() for r in split]
        finish(stage, self.recipe, self.manifest, files, rejects, self.removed,
               getattr(self.output, "provenance", None))
        if self.recipe.output.audit:
            audit_written(stage, self.recipe, self.manifest)
        if self.recipe.output.report:
            write_report_or_warn(stage)


def audit_written(stage: Path, recipe: Recipe, manifest: dict[str, Any]) -> None:
    """``[output] audit``: render the written rows with the template, as the trainer will, and put
    the audit in the manifest; under ``strict`` a row that would train differently from what the
    recipe asked fails the build (nothing is written)."""
    from mixer import audit as audit_mod

    template = recipe.output.audit
    assert template is not None
    # counted with the recipe's tokenizer (a model's tokenizer.json too), so the audit's counts and the
    # manifest's token_counts compare like for like; a tokenizer folder as template brings its own
    result = audit_mod.audit(stage, template, encoding=recipe.tokenizer)
    manifest["audit"] = result.as_dict()
    audit_mod.compare(manifest["audit"], manifest)
    if recipe.output.strict and result.total.problems:
        findings = "; ".join(f"{finding} (e.g. {example})" for finding, example in result.total.examples.items())
        raise DataError(f"--strict: the audit with {template} found {result.total.problems:,} of "
                        f"{result.sampled:,} rows that would train differently from what the recipe asked: "
                        f"{findings}; nothing was written")
    (stage / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def write_report_or_warn(folder: Path) -> None:
    """``report.html`` for a written output; a report bug never loses a finished build."""
    from mixer.report import write_report

    try:
        write_report(folder)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - the data is written; say how to retry (Polars panics too)
        print(f"warning: report.html not written ({type(exc).__name__}: {exc}); run `mixer report OUT`",
              file=sys.stderr)


def finish(stage: Path, recipe: Recipe, manifest: dict[str, Any], files: list[writers.OutputFile],
           rejects: list[dict[str, Any]], removed: pl.DataFrame, provenance: pl.DataFrame | None = None) -> None:
    """The files beside the data: dataset card (trainer formats), rejects, removed rows, the
    written rows' provenance (trainer formats), manifest."""
    fmt = formats.FORMATS[recipe.output.format]
    if fmt.converts:
        (stage / "README.md").write_text(
            formats.dataset_card(recipe.name, fmt, files), encoding="utf-8")
    where = {f.split: posixpath.dirname(f.path) if fmt.split_folders else f.path for f in files}
    for name, text_of in fmt.side_files.items():
        (stage / name).write_text(text_of(recipe.name, where), encoding="utf-8")
    manifest["outputs"] = [f.as_dict() for f in files]
    if fmt.converts and provenance is not None:
        provenance.write_parquet(stage / "rows.parquet", compression="zstd")
        manifest["provenance_file"] = "rows.parquet"
    if rejects:
        writers.write_jsonl(stage / "rejects.jsonl", rejects)
        manifest["rejects_file"] = "rejects.jsonl"
    if removed.height:
        removed.write_ndjson(stage / "removed.jsonl")
        manifest["removed_file"] = "removed.jsonl"
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
    # what is written has the declared shape (a failure is a bug in mixer: declare the new key)
    manifest_schema.conform(json.loads(text), manifest_schema.ConvertManifest if "converted" in manifest
                            else manifest_schema.Manifest)
    (stage / "manifest.json").write_text(text, encoding="utf-8")


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
