"""Output formats: canonical rows in, each trainer's own shape out.

Every format is one module of this package that declares ``FORMAT`` (a :class:`Format`): how
one canonical row (as a dict) converts, raising :class:`Unrepresentable` with a reason when the
target cannot carry it; the ``datasets`` features of its output; its options and side files;
how the audit reads a written row back. This package finds the modules itself, so adding a
format is adding one module (and its test); nothing else lists formats. Nothing is dropped
silently: :func:`export` returns the rejected rows with their reasons, and the build counts
them in the manifest and writes them to ``rejects.jsonl`` (or fails under ``--strict``).

The formats, from their modules: ``canonical`` (mixer's own schema), ``trl`` (TRL
SFTTrainer, axolotl), ``llama-factory`` (sharegpt + ``dataset_info.json``), ``openai``
(fine-tuning JSONL), ``torchtune`` (tools folded into system), ``prompt`` (TRL GRPO/RLOO),
``text`` (chat template rendered).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
from typing import Any

import polars as pl

from mixer.errors import RecipeError
from mixer.formats.common import Format, Unrepresentable, decode_json, has_json_feature
from mixer.formats import common


def _discover() -> dict[str, Format]:
    """Every ``FORMAT`` declared by a module of this package, in listing order."""
    found: list[Format] = []
    for info in pkgutil.iter_modules(__path__):
        declared = getattr(importlib.import_module(f"{__name__}.{info.name}"), "FORMAT", None)
        if isinstance(declared, Format):
            found.append(declared)
    return {f.name: f for f in sorted(found, key=lambda f: (f.order, f.name))}


FORMATS: dict[str, Format] = _discover()
#: every name ``output.format`` accepts (format names and their aliases)
NAMES: tuple[str, ...] = tuple(n for f in FORMATS.values() for n in (f.name, *f.aliases))


def get(name: str, where: str = "output.format") -> Format:
    """The format called ``name`` (or an alias of it), or an error that lists the choices."""
    for fmt in FORMATS.values():
        if name == fmt.name or name in fmt.aliases:
            return fmt
    raise RecipeError(f"{where}: unknown format {name!r}; expected one of {', '.join(NAMES)}")


def options(fmt: Format, output: Any, base_dir: Any) -> dict[str, Any]:
    """Keyword arguments of ``fmt``'s converter for this build (``rename_tools``, the format's own)."""
    out: dict[str, Any] = {"rename_tools": True} if output.rename_tools else {}
    return {**out, **(fmt.options(output, base_dir) if fmt.options is not None else {})}


class Exported:
    """Converted rows of one split and the rows the format could not carry.

    A shard converted in batch (:attr:`Format.convert_frame`) keeps its rows as ``table``, an
    Arrow table in the format's features (Parquet formats), or as ``lines``, a string Series of
    its JSON lines (JSON Lines formats); the writers and ``to_datasets`` take them as they are,
    and ``rows`` makes dicts of them only when asked for (a ``Json`` value of a table as its text)."""

    def __init__(self, rows: list[dict[str, Any]] | None = None, rejects: list[dict[str, Any]] | None = None,
                 renamed: list[dict[str, Any]] | None = None, table: Any = None, lines: pl.Series | None = None) -> None:
        self._rows = rows if rows is not None or table is not None or lines is not None else []
        self.rejects = rejects if rejects is not None else []
        self.renamed = renamed if renamed is not None else []  # rows whose tools were renamed: source, id, names
        # written rows with a tool spec a configuration of the trainer cannot render: source, id, reason, tools
        self.unrendered: list[dict[str, Any]] = []
        self.table = table
        self.lines = lines

    @classmethod
    def of(cls, part: Any, rejects: list[dict[str, Any]] | None = None) -> Exported:
        """A converted shard as the writers hold it (:attr:`part`), back as an ``Exported``."""
        if isinstance(part, pl.Series):
            return cls(None, rejects, lines=part)
        return cls(part, rejects) if isinstance(part, list) else cls(None, rejects, table=part)

    @property
    def rows(self) -> list[dict[str, Any]]:
        if self._rows is None:
            self._rows = (self.table.to_pylist() if self.table is not None
                          else [json.loads(line) for line in self.lines])  # type: ignore[union-attr]
        return self._rows

    @property
    def part(self) -> Any:
        """What the writers take: the table or the lines of a batch-converted shard, else the rows."""
        return self.table if self.table is not None else self.lines if self.lines is not None else self.rows

    def __len__(self) -> int:
        return len(self.part) if self._rows is None else len(self._rows)


def export(frame: pl.DataFrame, fmt: Format, rename_tools: bool = False, **options: Any) -> Exported:
    """Convert each canonical row; rows that cannot be represented are collected with reasons.

    A format with a batch converter converts the whole frame at once when it can; the rows it
    leaves are the ones its checks refuse, which go through the row converter for their reasons.
    With ``rename_tools``, tool names that break the format's rule are renamed to fit it first
    (:func:`common.rename_tools`), and each renamed row is recorded. Written rows whose tools the
    trainer cannot render in one of its configurations (:attr:`Format.tool_problem`) are recorded."""
    done = _converted(frame, fmt, rename_tools, **options)
    done.unrendered = unrendered(frame, fmt, done.rejects)
    return done


def _converted(frame: pl.DataFrame, fmt: Format, rename_tools: bool = False, **options: Any) -> Exported:
    if fmt.convert_frame is not None:
        batch = fmt.convert_frame(frame, **options)
        if batch is not None:
            out, converted = batch
            left = _each_row(frame.filter(~converted), fmt, rename_tools, **options)
            if not left.rows:  # every row left was refused, with its reason
                done = Exported.of(out, left.rejects)
                done.renamed = left.renamed
                return done
    return _each_row(frame, fmt, rename_tools, **options)


def unrendered(frame: pl.DataFrame, fmt: Format, rejects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of ``frame`` written (not in ``rejects``) with a tool spec that ``fmt``'s
    :attr:`~Format.tool_problem` finds a reason against: ``source``, ``id``, the first such
    spec's ``reason`` and the names of the row's specs that have one (``tools``). Each distinct
    spec is checked once."""
    if fmt.tool_problem is None or frame.is_empty():
        return []
    problems = {text: reason for text in common.distinct_specs(frame).to_list() if (reason := fmt.tool_problem(text))}
    if not problems:
        return []
    bad = pl.Series(list(problems), dtype=pl.String)
    gone = pl.Series([r["id"] for r in rejects], dtype=pl.String)

    def of_bad(values: list[str]) -> pl.Expr:  # each of a row's specs with a problem, as ``values`` says
        return pl.col("tools").list.eval(pl.element().replace_strict(bad, pl.Series(values, dtype=pl.String),
                                                                     default=None)).list.drop_nulls()

    flagged = frame.select("source", "id", "tools").filter(
        pl.col("tools").list.eval(pl.element().is_in(bad.implode())).list.any(), ~pl.col("id").is_in(gone.implode()))
    names = [common.spec(text)["function"]["name"] for text in problems]
    return flagged.select("source", "id", of_bad(list(problems.values())).list.first().alias("reason"),
                          of_bad(names).alias("tools")).to_dicts()


def _each_row(frame: pl.DataFrame, fmt: Format, rename_tools: bool = False, **options: Any) -> Exported:
    assert fmt.convert is not None
    out = Exported(rows=[])
    with common.no_gc():
        for row in frame.iter_rows(named=True):
            if rename_tools and fmt.tool_name is not None and row["kind"] == "chat":
                names = common.rename_tools(row, fmt.tool_name)
                if names:
                    out.renamed.append({"source": row["source"], "id": row["id"], "names": names})
            try:
                out.rows.append(fmt.convert(row, **options))
            except Unrepresentable as exc:
                out.rejects.append({"source": row["source"], "id": row["id"], "stage": f"export:{fmt.name}",
                                    "reason": str(exc), **({"detail": exc.detail} if exc.detail else {}),
                                    "n_tokens": row["n_tokens"]})
    return out


def dataset_card(name: str, fmt: Format, files: list[Any]) -> str:
    """A README.md whose YAML header tells ``datasets.load_dataset`` the features and the exact files.

    The features make JSON Lines with tool schemas that differ across rows load as ``Json`` values,
    not as a struct type inferred from the first rows. The files are listed by name, never by glob,
    and the config's ``description`` carries a fingerprint of their sha256: ``datasets`` (4.x and
    5.x) keys its cache for a local folder on a hash of the card's configs and infos, so a glob card
    would give a rebuilt folder (or another folder of the same name) the cache of an older build,
    and ``load_dataset(out)`` would return the old rows. With the fingerprint, new bytes mean a new
    cache entry, always. ``files`` are :class:`mixer.writers.OutputFile` (path, split, sha256).
    """
    import yaml

    header: dict[str, Any] = {}
    features = fmt.features() if fmt.features is not None else None
    if features is not None:
        header["dataset_info"] = features_yaml(features)
    by_split: dict[str, list[str]] = {}
    for f in sorted(files, key=lambda f: f.path):
        by_split.setdefault(f.split, []).append(f.path)
    header["configs"] = [{"config_name": "default", "description": f"mixer build {fingerprint(files)}",
                          "data_files": [{"split": s, "path": paths} for s, paths in sorted(by_split.items())]}]
    return ("---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n"
            f"# {name}\n\nBuilt by mixer in the `{fmt.name}` format. `manifest.json` lists every source, "
            "its share and every file's sha256.\n")


def fingerprint(files: list[Any]) -> str:
    """sha256 over the output files' paths and content hashes: the identity of a build's data."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\0{f.sha256}\n".encode())
    return digest.hexdigest()


def features_yaml(features: Any) -> dict[str, Any]:
    """The ``dataset_info`` YAML of a card: the features as ``datasets`` itself writes them."""
    import datasets

    return datasets.DatasetInfo(features=features)._to_yaml_dict()


__all__ = ["dataset_card", "decode_json", "fingerprint", "get", "has_json_feature", "options", "FORMATS", "NAMES", "Exported",
           "Format", "Unrepresentable", "common", "export"]
