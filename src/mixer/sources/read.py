"""Read one recipe source into canonical rows, accounting for every record.

``read_source`` returns the canonical frame (``n_tokens`` still zero: counting is the tokens
layer's job) and a :class:`ReadReport` whose counts add up: ``read = rejected + available``.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from itertools import islice
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import polars as pl

from mixer import schema
from mixer.errors import DataError, RecipeError
from mixer.rng import content_hash
from mixer.specs import Source
from mixer.sources import fast
from mixer.sources import formats
from mixer.sources.adapters import RowError, rename
from mixer.sources.occurrences import Occurrences
from mixer.sources.files import (
    JSONL_SUFFIXES, SUFFIXES, SURROGATE, Fingerprints, InputFile, Located, Part, Unreadable, parse_object, fingerprint,
    locate, line_blocks, read_parts,
)

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
    inputs: list[InputFile]  # complete once the chunks are all read (the files are hashed beside the read)
    rows_read: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)
    rejects: list[Reject] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)  # per input file: a folder may mix formats
    read_paths: Counter[str] = field(default_factory=Counter)  # chats from JSON Lines or Arrow: rows per read path
    notes: list[str] = field(default_factory=list)  # things the user should be told (skipped files)

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
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: keep it visible as an escape
        text = json.dumps(record, default=str)
    return text if len(text) <= 2000 else text[:2000] + f"... [{len(text) - 2000} more chars]"


def _columns(head: list[Located], source: Source) -> set[str]:
    columns: set[str] = set()
    for item in head:
        if isinstance(item.record, dict):
            columns |= set(rename(item.record, source.fields))
    return columns


def _not_readable(source: Source, part: Part, head: list[Located]) -> DataError:
    """No record of a file's first ones parsed: name the file and say what it seems to be."""
    first = head[0]
    reason = first.record.message if isinstance(first.record, Unreadable) else "unreadable"
    raw = first.record.raw if isinstance(first.record, Unreadable) else ""
    where = part.path if part.path is not None else part.label
    if part.path is not None and part.path.name.lower().endswith(JSONL_SUFFIXES):
        if reason.startswith("not valid UTF-8") or "\x00" in raw or "\ufffd" in raw:
            return DataError(f"sources.{source.name}: {where} is not JSON Lines: line {first.line} is binary data, "
                             "not text (a compressed or binary file named .jsonl?)")
        if not raw.lstrip().startswith(("{", "[")) and ("," in raw or "\t" in raw):
            hint = "it looks like CSV or TSV text: rename it to .csv if it is CSV"
        else:
            hint = "each line must be one JSON object"
        return DataError(f"sources.{source.name}: {where} is not JSON Lines: line {first.line}: {reason}; {hint}")
    return DataError(f"sources.{source.name}: {where}: none of the first {len(head)} records could be read; "
                     f"line {first.line}: {reason}")


def _choose_format(source: Source, part: Part, head: list[Located]) -> str:
    """The format of one file: the recipe's, else detected from the columns of its first records."""
    if source.format != "auto":
        fmt = source.format
    else:
        columns = _columns(head, source)
        if not columns and not any(isinstance(item.record, dict) for item in head):
            raise _not_readable(source, part, head)
        fmt = formats.detect(columns, source)  # type: ignore[assignment]
        if fmt is None:
            seen = ", ".join(sorted(columns)) or "no columns"
            raise RecipeError(
                f"sources.{source.name}: cannot tell the format of {part.label} from its columns; saw: {seen}. "
                f"Expected {formats.expected(source)}. Set format = \"...\", or map your column names with "
                "fields = { messages = \"your_column\" }"
            )
    if source.kind is not None and source.kind not in formats.FORMATS[fmt].kinds:
        raise RecipeError(f"sources.{source.name}: kind = \"{source.kind}\" but format = \"{fmt}\" ({part.label}), "
                          f"which makes {' or '.join(formats.FORMATS[fmt].kinds)} rows")
    return fmt


def _skipped_note(source: Source, skipped: list[Path]) -> list[str]:
    if not skipped:
        return []
    names = ", ".join(p.name for p in skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
    return [f"sources.{source.name}: skipped {len(skipped)} file(s) in {source.path} whose extension mixer does "
            f"not read: {names} (it reads {', '.join(SUFFIXES)})"]


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
    inputs, parts, skipped = read_parts(source)  # the inputs are hashed while they are read
    report = ReadReport(source=source.name, format="", inputs=[], notes=_skipped_note(source, skipped))
    pending = iter(parts)
    for part in pending:  # the first file with records is detected now, before any chunk
        head = list(islice(part.records, _DETECT_SAMPLE))
        if head:
            break
    else:
        raise DataError(f"sources.{source.name}: {source.path} has no records (empty file or files); "
                        "check the path or remove the source from the recipe")
    _note_format(report, part, _choose_format(source, part, head))
    return report, _adapted(source, report, _per_file(source, report, part, head, pending), rows, inputs)


def _note_format(report: ReadReport, part: Part, fmt: str) -> str:
    report.formats[part.label] = fmt
    report.format = ", ".join(dict.fromkeys(report.formats.values()))
    return fmt


@dataclass(frozen=True)
class _Lines:
    """A JSON Lines file of chats (or a JSON array file's items, ``items``), read in batches by
    :mod:`mixer.sources.fast`."""

    path: Path
    label: str
    format: str
    items: Iterator[tuple[int, str | Unreadable]] | None = None  # a JSON array's items, else the file's lines


def _per_file(source: Source, report: ReadReport, first: Part, head: list[Located],
              pending: Iterator[Part]) -> Iterator[tuple[str, Located | _Lines | _Arrow]]:
    """Every record with the format of its own file (a folder may mix formats); a JSON Lines
    file of OpenAI chats as a whole, for the batch path."""
    fmt = report.formats[first.label]
    yield from _records(source, fmt, first, head)
    for part in pending:
        head = list(islice(part.records, _DETECT_SAMPLE))
        if not head:
            continue
        fmt = _note_format(report, part, _choose_format(source, part, head))
        yield from _records(source, fmt, part, head)


@dataclass(frozen=True)
class _Arrow:
    """An Arrow-backed input (Hub dataset, ``save_to_disk`` folder, Parquet file) of chats, read
    in record batches by :mod:`mixer.sources.fast`."""

    part: Part
    format: str


def _records(source: Source, fmt: str, part: Part,
             head: list[Located]) -> Iterator[tuple[str, Located | _Lines | _Arrow]]:
    if formats.FORMATS[fmt].batch and not source.fields:  # read again from the start, by the batch reader
        batch: _Lines | _Arrow | None = None
        if part.path is not None and part.path.name.lower().endswith(JSONL_SUFFIXES):
            batch = _Lines(part.path, part.label, fmt)
        elif (items := part.scan.take() if part.scan is not None else None) is not None:  # a JSON array's
            batch = _Lines(part.path, part.label, fmt, items)  # type: ignore[arg-type]
        elif part.batches is not None:
            batch = _Arrow(part, fmt)
        if batch is not None:
            getattr(part.records, "close", lambda: None)()  # what detection read holds (a block, a file's text)
            yield fmt, batch
            return
    for item in _chain(head, part.records):
        yield fmt, item
    if part.scan is not None:
        part.scan.forget()  # its records are read: the file's text can go


# json.dumps(..., ensure_ascii=False, sort_keys=True) with one encoder built once, not per call.
_to_json = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def _adapted(source: Source, report: ReadReport, records: Iterator[tuple[str, Located | _Lines | _Arrow]],
             rows: int, inputs: Fingerprints) -> Iterator[pl.DataFrame]:
    out = _Chunks(rows, source)
    for fmt, item in records:
        if isinstance(item, (_Lines, _Arrow)):
            runs = _fast_file(source, item, report) if isinstance(item, _Lines) else _arrow_part(source, item, report)
            for run in runs:
                if isinstance(run, Located):
                    _one(source, report, fmt, run, out)
                else:
                    out.add_frame(_counted(run, report))
                yield from out.full()
            continue
        _one(source, report, fmt, item, out)
        yield from out.full()
    rest = list(out.rest())
    report.inputs = inputs.result()  # before the last chunk: the report is final when the chunks end
    yield from rest


class _Chunks:
    """Adapted rows in read order, identified, handed out as canonical frames of ``rows`` rows.

    A row's id is its content digest, with ``.k`` for the k-th identical copy in the source:
    rows are numbered here, in read order, whichever path read them."""

    def __init__(self, rows: int, source: Source) -> None:
        self.rows, self.source = rows, source
        self.seen = Occurrences()  # content digests of the whole source
        self.cols = _empty_columns()
        self.frames: list[pl.DataFrame] = []
        self.height = 0
        self.emitted = False

    def add_row(self, row: dict[str, Any], digest: str, meta_json: str) -> None:
        self.cols["_digest"].append(digest)
        for name in ("kind", "system", "messages", "tools", "text"):
            self.cols[name].append(row[name])
        self.cols["meta"].append(meta_json)
        self.height += 1

    def add_frame(self, frame: pl.DataFrame) -> None:
        """Rows of the batch path: canonical columns but ``id``, and ``_digest``."""
        self._flush_cols()
        self.frames.append(self._identified(frame))
        self.height += frame.height

    def _identified(self, frame: pl.DataFrame) -> pl.DataFrame:
        digest = frame.get_column("_digest")
        k = pl.Series(self.seen.number(digest.str.to_integer(base=16, dtype=pl.UInt64).to_numpy()))
        frame = frame.with_columns(
            id=pl.concat_str(pl.lit(f"{self.source.name}/"), digest,
                             pl.when(k > 0).then(pl.lit(".") + k.cast(pl.String)).otherwise(pl.lit(""))),
            source=pl.lit(self.source.name), n_tokens=pl.lit(0, pl.UInt32),
        )
        return schema.check(frame.select(schema.COLUMNS), f"reading source {self.source.name!r}")

    def _flush_cols(self) -> None:
        if self.cols["_digest"]:
            self.frames.append(self._identified(_frame(self.cols)))
            self.cols = _empty_columns()

    def full(self) -> Iterator[pl.DataFrame]:
        while self.height >= self.rows:
            self._flush_cols()
            frame = pl.concat(self.frames) if len(self.frames) > 1 else self.frames[0]
            rest = frame.slice(self.rows)
            self.frames, self.height = ([rest] if rest.height else []), rest.height
            self.emitted = True
            yield frame.head(self.rows)

    def rest(self) -> Iterator[pl.DataFrame]:
        self._flush_cols()
        if self.frames:
            yield pl.concat(self.frames) if len(self.frames) > 1 else self.frames[0]
        elif not self.emitted:
            yield self._identified(_frame(_empty_columns()))


def _fast_file(source: Source, lines: _Lines, report: ReadReport) -> Iterator[Located | pl.DataFrame]:
    """The file's records in line order: runs of batch-decoded rows (frames) and, one by one,
    the lines the batch path leaves to the adapter."""
    label_json = json.dumps(lines.label, ensure_ascii=False)
    label = lines.label
    batches = (_texts(lines.items) if lines.items is not None else
               (piece for block in line_blocks(lines.path, limit_mb=source.max_record_mb)
                for piece in block.slices(fast.BATCH_LINES)))

    def decode(batch: _TextBatch) -> tuple[_TextBatch, fast.Batch]:
        plain = fast.plain_mask(batch.texts, lines.format, source.side) & batch.texts.is_not_null()
        numbers = batch.numbers[plain.to_numpy()]
        return batch, (fast.decode(numbers, batch.texts.filter(plain), label_json, lines.format, source.side)
                       if len(numbers) else fast.Batch(pl.DataFrame(), []))

    for batch, decoded in ordered_map(decode, read_ahead(batches)):
        yield from _in_order(decoded, batch.numbers.tolist(), report, lambda rest, batch=batch: (
            Located(label, n, _record(batch.raw(n))) for n in rest))


_Raw = tuple[int, bytes | str | Unreadable]  # a line's (or array item's) number and its undecoded text


class _TextBatch(Protocol):
    """Consecutive records (lines or array items): their numbers, their text (null where it is no
    UTF-8, or too large) and each one's undecoded form by number (:class:`files.LineBlock`)."""

    @property
    def numbers(self) -> np.ndarray: ...
    @property
    def texts(self) -> pl.Series: ...
    def raw(self, number: int) -> bytes | str | Unreadable: ...


@dataclass(frozen=True)
class _Items:
    numbers: np.ndarray
    texts: pl.Series
    raws: dict[int, bytes | str | Unreadable]

    def raw(self, number: int) -> bytes | str | Unreadable:
        return self.raws[number]


def _texts(items: Iterator[_Raw]) -> Iterator[_Items]:
    """A JSON array's items in batches, each with its items' text (None where it is no UTF-8)."""
    for batch in _batches(items, fast.BATCH_LINES):
        texts: list[str | None] = []
        for _, raw in batch:
            try:
                texts.append(raw.decode("utf-8") if isinstance(raw, bytes) else raw if isinstance(raw, str) else None)
            except UnicodeDecodeError:
                texts.append(None)  # the adapter path says where the bad byte is
        yield _Items(np.array([n for n, _ in batch], dtype=np.int64), pl.Series(texts, dtype=pl.String), dict(batch))


def _batches(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while batch := list(islice(items, size)):
        yield batch


T = TypeVar("T")
U = TypeVar("U")


def read_ahead(produce: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``produce``'s items, each made while the caller works on the one before: reading and
    decoding lines is Python, the batch path's work is Polars, which lets go of the GIL, so the
    two overlap on two cores. Errors come out where the item would have; stopping early stops
    the thread and closes ``produce``."""
    ready: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in produce:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, raised there
            put((False, exc))
        finally:
            getattr(produce, "close", lambda: None)()

    worker = threading.Thread(target=run, name="mixer-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = ready.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def ordered_map(fn: Callable[[T], U], items: Iterator[T], workers: int | None = None) -> Iterator[U]:
    """``fn`` of each item, in order, with up to ``workers`` items (default: one per core plus
    one, at most 4) worked on at once in threads: the batch path's work is mostly Polars, which
    lets go of the GIL, so batches decode on every core, and the extra one keeps the cores busy
    while a batch is in its Python steps (500k JSON Lines read on 2 cores: 4.1 -> 3.9 s). An
    error comes out at its item; stopping early stops taking items."""
    from concurrent.futures import Future, ThreadPoolExecutor

    if workers is None:
        workers = min(4, pl.thread_pool_size() + 1)

    pending: deque[Future[U]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mixer-decode") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            getattr(items, "close", lambda: None)()


def _record(raw: bytes | str | Unreadable) -> dict[str, Any] | Unreadable:
    """A line (or array item) the batch path leaves to the adapter, decoded as the per-record reader does."""
    if isinstance(raw, Unreadable):
        return raw
    return parse_object(raw.encode("utf-8") if isinstance(raw, str) else raw)


def _arrow_part(source: Source, arrow: _Arrow, report: ReadReport) -> Iterator[Located | pl.DataFrame]:
    """An Arrow-backed input's records in row order: runs of batch-built rows (frames) and, one
    by one, the rows the batch path leaves to the adapter (as the per-record reader gives them)."""
    import pyarrow as pa

    label = arrow.part.label
    label_json = json.dumps(label, ensure_ascii=False)
    wanted = fast.arrow_columns(arrow.format, source.side)

    def numbered(batches: Iterator[Any]) -> Iterator[tuple[int, Any]]:
        first = 1
        for batch in batches:
            yield first, batch
            first += batch.num_rows

    def decode(item: tuple[int, Any]) -> tuple[int, Any, fast.Batch]:
        first, batch = item
        frame = _polars(batch, wanted)
        return first, batch, (fast.arrow_batch(frame, first, label_json, arrow.format, source.side)
                              if frame is not None else fast.Batch(pl.DataFrame(), []))

    for first, batch, decoded in ordered_map(decode, numbered(arrow.part.batches())):
        numbers = range(first, first + batch.num_rows)
        start = first

        def records(rest: list[int], batch: Any = batch, start: int = start) -> Iterator[Located]:
            for i in range(0, len(rest), 4096):  # as dicts a few thousand at a time, as the per-record reader
                some = rest[i:i + 4096]
                taken = batch.take(pa.array([n - start for n in some], pa.int64())).to_pylist()
                yield from (Located(label, n, record) for n, record in zip(some, taken))

        yield from _in_order(decoded, numbers, report, records)


def _polars(batch: Any, wanted: set[str]) -> pl.DataFrame | None:
    """The columns of an Arrow record batch the batch path looks at, as a Polars frame; None when
    it has none of them or Polars cannot take their types (its rows then go to the adapter)."""
    import pyarrow as pa

    columns = {}
    for name in batch.schema.names:
        if name not in wanted:
            continue
        column, kind = batch.column(name), batch.schema.field(name).type
        if name == "id" and not (_plain_type(kind) and not pa.types.is_nested(kind)):
            # an id of any other type (decimal, timestamp, ...): its text as the adapter writes it
            column = pa.array([None if v is None or isinstance(v, (dict, list)) else str(v)
                               for v in column.to_pylist()], pa.large_string())
        elif not _plain_type(kind):
            return None
        columns[name] = column
    if not columns:
        return None
    try:
        frame = pl.from_arrow(pa.table(columns))
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, pa.ArrowException, TypeError, ValueError):
        return None
    return frame if isinstance(frame, pl.DataFrame) and frame.height == batch.num_rows else None


def _plain_type(kind: Any) -> bool:
    """Arrow types Polars takes as they are: strings, integers, floats, booleans, nulls, and
    lists and structs of them."""
    import pyarrow as pa

    t = pa.types
    if t.is_list(kind) or t.is_large_list(kind):
        return _plain_type(kind.value_type)
    if t.is_struct(kind):
        return all(_plain_type(kind.field(i).type) for i in range(kind.num_fields))
    return (t.is_string(kind) or t.is_large_string(kind) or t.is_integer(kind) or t.is_boolean(kind)
            or t.is_null(kind) or t.is_float32(kind) or t.is_float64(kind))


def _in_order(decoded: fast.Batch, numbers: Sequence[int], report: ReadReport,
              records: Callable[[list[int]], Iterator[Located]]) -> Iterator[Located | pl.DataFrame]:
    """A batch's records in order: runs of the rows the batch path built, and the records of the
    other line numbers (``records(numbers)`` gives them) for the adapter; both counted."""
    report.read_paths["batch"] += decoded.rows.height
    fast_lines = set(decoded.rows.get_column("_line").to_list()) if decoded.rows.height else set()
    rest = [n for n in numbers if n not in fast_lines]
    report.read_paths["per record"] += len(rest)
    others = records(rest) if rest else iter(())
    run_start = 0
    position = 0  # index into decoded.rows
    for n in numbers:
        if n in fast_lines:
            position += 1
            continue
        if position > run_start:
            yield decoded.rows.slice(run_start, position - run_start)
        run_start = position
        yield next(others)
    if position > run_start:
        yield decoded.rows.slice(run_start, position - run_start)


def _counted(run: pl.DataFrame, report: ReadReport) -> pl.DataFrame:
    """Batch-decoded rows, counted (rows, repairs) as the per-record path counts its rows."""
    report.rows_read += run.height
    report.repairs.update(run.get_column("_repairs").explode().drop_nulls().to_list())
    return run


def _one(source: Source, report: ReadReport, fmt: str, item: Located, out: _Chunks) -> None:
    """One record through its format's adapter: a row, or a counted rejection."""
    report.rows_read += 1
    try:
        if isinstance(item.record, Unreadable):
            raise RowError(item.record.reason, item.record.where, item.record.at)
        record = rename(item.record, source.fields) if source.fields else item.record
        row = formats.FORMATS[fmt].adapt(record, source)
        meta = row["meta"]
        original_id = item.record.get("id")
        if original_id is not None and not isinstance(original_id, (dict, list)):
            meta["source_id"] = str(original_id)
        meta["origin"] = f"{item.file}:{item.line}"
        meta_json = _to_json(meta)
        try:
            digest = content_hash(_to_json([row["kind"], row["system"], row["messages"], row["tools"], row["text"]]))
        except UnicodeEncodeError:  # a lone surrogate that a reader let through (JSON readers catch them)
            raise RowError(SURROGATE) from None
    except RowError as exc:
        reason = str(exc)  # where in this record, for the error and rejects.jsonl; counted: exc.reason
        if source.on_error == "fail":
            raise DataError(
                f"{item.file}:{item.line} (source {source.name!r}, format {fmt}): {reason}. Fix "
                f"the record, or set sources.{source.name}.on_error = \"skip\" to skip and count such rows"
            ) from None
        report.rejected[exc.reason] += 1
        if len(report.rejects) < _MAX_REJECT_EXAMPLES:
            report.rejects.append(Reject(source.name, item.file, item.line, reason, _raw_excerpt(item.record)))
        return
    for repair in meta.get("repairs", ()):
        report.repairs[repair] += 1
    out.add_row(row, digest, meta_json)


def _empty_columns() -> dict[str, list[Any]]:
    return {name: [] for name in ("_digest", "kind", "system", "messages", "tools", "text", "meta")}


def _frame(cols: dict[str, list[Any]]) -> pl.DataFrame:
    """Columns of adapted rows as a frame of canonical columns (but ``id``) and ``_digest``,
    converted by Arrow (typed, in C++), not row by row."""
    import pyarrow as pa

    table = pa.table({name: pa.array(values, type=pa.string() if name == "_digest" else _ARROW.field(name).type)
                      for name, values in cols.items()})
    return pl.from_arrow(table)


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


def _chain(head: list[Located], rest: Any) -> Any:
    yield from head
    yield from rest
