"""Read one recipe source into canonical rows, accounting for every record.

``read_source`` returns the canonical frame (``n_tokens`` still zero: counting is the tokens
layer's job) and a :class:`ReadReport` whose counts add up: ``read = rejected + available``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from collections.abc import Iterator
from typing import Any

import polars as pl

from mixer import schema
from mixer.errors import DataError, RecipeError
from mixer.rng import content_hash
from mixer.recipe import Source
from mixer.sources.adapters import ADAPTERS, RowError, detect, rename
from mixer.sources.files import InputFile, Located, Unreadable, fingerprint, locate, read

_DETECT_SAMPLE = 64
_MAX_REJECT_EXAMPLES = 10_000


@dataclass(frozen=True)
class Reject:
    """One record that did not become a row: where it was, why, and (an excerpt of) what it was."""

    source: str
    file: str
    line: int
    reason: str
    raw: str


@dataclass
class ReadReport:
    """What reading one source did, for the manifest."""

    source: str
    format: str
    inputs: list[InputFile]
    rows_read: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def rows_available(self) -> int:
        return self.rows_read - self.rows_rejected


def _raw_excerpt(record: dict[str, Any] | Unreadable) -> str:
    if isinstance(record, Unreadable):
        return record.raw
    text = json.dumps(record, ensure_ascii=False, default=str)
    return text if len(text) <= 2000 else text[:2000] + f"... [{len(text) - 2000} more chars]"


def _choose_format(source: Source, head: list[Located]) -> str:
    if source.format != "auto":
        return source.format
    columns: set[str] = set()
    for item in head:
        if isinstance(item.record, dict):
            columns |= set(rename(item.record, source.fields))
    fmt = detect(columns, source)
    if fmt is None:
        seen = ", ".join(sorted(columns)) or "no columns (no readable records)"
        raise RecipeError(
            f"sources.{source.name}: cannot tell the format from the columns; saw: {seen}. "
            "Expected messages (openai), conversations (sharegpt), instruction+output (alpaca), "
            f"chosen/rejected (hh-rlhf) or {source.text_field!r} (document). Set format = \"...\", "
            "or map your column names with fields = { messages = \"your_column\" }"
        )
    return fmt


def read_source(source: Source) -> tuple[pl.DataFrame, ReadReport]:
    """Read, adapt and identify every record of ``source``."""
    report, chunks = read_chunks(source)
    frames = list(chunks)
    frame = pl.concat(frames) if len(frames) > 1 else frames[0]
    return frame, report


def read_chunks(source: Source, rows: int = 1_000_000) -> tuple[ReadReport, Iterator[pl.DataFrame]]:
    """Canonical frames of at most ``rows`` rows each, for sources larger than memory.

    The report's counts grow as the chunks are consumed; they are final once the iterator is
    exhausted. Errors about the source as a whole (missing, empty, unknown format) are raised
    here, before any chunk.
    """
    fast = _canonical_parquet(source, rows)
    if fast is not None:
        return fast
    inputs, records = read(source)
    head = list(islice(records, _DETECT_SAMPLE))
    if not head:
        raise DataError(f"sources.{source.name}: {source.path} has no records (empty file or files); "
                        "check the path or remove the source from the recipe")
    fmt = _choose_format(source, head)
    if source.kind == "chat" and fmt == "document":
        raise RecipeError(f"sources.{source.name}: kind = \"chat\" but format = \"document\"")
    if source.kind == "document" and fmt not in ("document", "canonical"):
        raise RecipeError(f"sources.{source.name}: kind = \"document\" but format = {fmt!r}")
    report = ReadReport(source=source.name, format=fmt, inputs=inputs)
    return report, _adapted(source, report, _chain(head, records), rows)


def _adapted(source: Source, report: ReadReport, records: Iterator[Located], rows: int) -> Iterator[pl.DataFrame]:
    adapt = ADAPTERS[report.format]
    seen: Counter[str] = Counter()  # content digests of the whole source: identical copies get .k ids
    cols = _empty_columns()
    emitted = False
    for item in records:
        report.rows_read += 1
        try:
            if isinstance(item.record, Unreadable):
                raise RowError(item.record.reason)
            row = adapt(rename(item.record, source.fields), source)
        except RowError as exc:
            reason = str(exc)
            if source.on_error == "fail":
                raise DataError(
                    f"{item.file}:{item.line} (source {source.name!r}, format {report.format}): {reason}. Fix "
                    f"the record, or set sources.{source.name}.on_error = \"skip\" to skip and count such rows"
                ) from None
            report.rejected[_reason_key(reason)] += 1
            if len(report.rejects) < _MAX_REJECT_EXAMPLES:
                report.rejects.append(Reject(source.name, item.file, item.line, reason, _raw_excerpt(item.record)))
            continue
        meta = row["meta"]
        for repair in meta.get("repairs", ()):
            report.repairs[repair] += 1
        original_id = item.record.get("id")
        if original_id is not None and not isinstance(original_id, (dict, list)):
            meta["source_id"] = str(original_id)
        meta["origin"] = f"{item.file}:{item.line}"
        digest = content_hash(json.dumps(
            [row["kind"], row["system"], row["messages"], row["tools"], row["text"]],
            ensure_ascii=False, sort_keys=True,
        ))
        seen[digest] += 1
        occurrence = seen[digest] - 1
        cols["id"].append(f"{source.name}/{digest}" + (f".{occurrence}" if occurrence else ""))
        for name in ("kind", "system", "messages", "tools", "text"):
            cols[name].append(row[name])
        cols["meta"].append(json.dumps(meta, ensure_ascii=False, sort_keys=True))
        if len(cols["id"]) >= rows:
            yield _frame(cols, source)
            cols, emitted = _empty_columns(), True
    if cols["id"] or not emitted:
        yield _frame(cols, source)


def _empty_columns() -> dict[str, list[Any]]:
    return {name: [] for name in ("id", "kind", "system", "messages", "tools", "text", "meta")}


def _frame(cols: dict[str, list[Any]], source: Source) -> pl.DataFrame:
    """Columns of adapted rows as a canonical frame, converted by Arrow (typed, in C++), not
    row by row."""
    import pyarrow as pa

    table = pa.table({name: pa.array(values, type=_ARROW.field(name).type) for name, values in cols.items()})
    frame = pl.from_arrow(table).with_columns(source=pl.lit(source.name), n_tokens=pl.lit(0, pl.UInt32))
    return schema.check(frame.select(schema.COLUMNS), f"reading source {source.name!r}")


_ARROW = schema.empty().to_arrow().schema


def _canonical_parquet(source: Source, rows: int) -> tuple[ReadReport, Iterator[pl.DataFrame]] | None:
    """Canonical rows written by mixer as Parquet are read in batches, without the per-record
    adapters.

    Ids keep their content hash (it is computed the same way) under this source's name.
    """
    if source.is_hub or source.format not in ("auto", "canonical") or source.fields:
        return None
    import pyarrow.parquet as pq

    files = locate(source)
    if not all(p.name.endswith(".parquet") for p in files):
        return None
    try:
        for path in files:
            if set(pq.read_schema(path).names) < set(schema.COLUMNS):
                return None
            head = pl.read_parquet(path, columns=list(schema.COLUMNS), n_rows=1)
            if head.schema != schema.SCHEMA:
                return None
    except Exception:  # unreadable or not canonical after all: the general path reports it
        return None
    report = ReadReport(source=source.name, format="canonical", inputs=[fingerprint(p) for p in files])
    return report, _parquet_batches(files, source, report, rows)


def _parquet_batches(files: list[Any], source: Source, report: ReadReport, rows: int) -> Iterator[pl.DataFrame]:
    import pyarrow.parquet as pq

    emitted = False
    for path in files:
        total = pq.ParquetFile(path).metadata.num_rows
        for offset in range(0, total, rows):  # Polars' own reader, the slice pushed down to row groups
            frame = pl.scan_parquet(path).select(schema.COLUMNS).slice(offset, rows).collect().with_columns(
                id=pl.lit(f"{source.name}/") + pl.col("id").str.split("/").list.last(),
                source=pl.lit(source.name),
            )
            report.rows_read += frame.height
            emitted = True
            yield schema.check(frame, f"reading source {source.name!r}")
    if not emitted:
        yield schema.empty()


def _reason_key(reason: str) -> str:
    """Group reasons for counting: positions and details after the first colon vary per row."""
    head = reason.split(": ", 1)
    if len(head) == 2 and (head[0].startswith(("messages[", "conversations[", "tools[", "history["))):
        reason = head[1]
    return reason.split(" at position ")[0].split(" at column ")[0]


def _chain(head: list[Located], rest: Any) -> Any:
    yield from head
    yield from rest
