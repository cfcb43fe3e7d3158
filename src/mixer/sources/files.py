"""Locate a source's files and read them into raw records, keeping where each came from.

A raw record is a plain dict (one JSON object, one CSV row, one Parquet row, one text
file). Parse failures are not raised here: they come back as :class:`Unreadable` items with
the file, line and reason, so the caller decides between failing and counting.
"""

from __future__ import annotations

import codecs
import glob as globlib
import gzip
import hashlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixer.errors import DataError, located
from mixer.specs import HUB_PREFIX, Source

SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json", ".json.gz", ".parquet",
            ".csv", ".csv.gz", ".txt", ".md")
_HF_DISK_MARKERS = ("dataset_dict.json", "state.json")
_BATCH = 4096
ARROW_BATCH = 10_000  # rows per Arrow slice handed to the batch reader (mixer.sources.fast)


@dataclass(frozen=True)
class InputFile:
    """One input as the manifest reports it: path, size in bytes and a content fingerprint."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Unreadable:
    """A record that could not even be parsed; ``raw`` is a bounded excerpt of its bytes.
    ``reason`` is counted, ``where``/``at`` locate it in this record (see :class:`RowError`)."""

    reason: str
    raw: str
    where: str | None = None
    at: str | None = None

    @property
    def message(self) -> str:
        return located(self.reason, self.where, self.at)


@dataclass(frozen=True)
class Located:
    """A raw record (or an Unreadable) and where it was: file label and 1-based line/row."""

    file: str
    line: int
    record: dict[str, Any] | Unreadable


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def fingerprint(path: Path) -> InputFile:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return InputFile(str(path), path.stat().st_size, digest.hexdigest())


class Fingerprints:
    """The input files' fingerprints, hashed in a thread from the moment the files are found:
    the hashing (which lets go of the GIL) then overlaps the read instead of coming before it
    (a 400 MB JSON Lines file: 0.3 s). :meth:`result` waits for them and raises a hashing error."""

    def __init__(self, paths: list[Path], known: list[InputFile] | None = None) -> None:
        self._result: list[InputFile] = list(known or [])
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if paths:
            self._thread = threading.Thread(target=self._hash, args=(paths,), name="mixer-fingerprint", daemon=True)
            self._thread.start()

    @classmethod
    def known(cls, inputs: list[InputFile]) -> Fingerprints:
        """Fingerprints already made (a Hub dataset's own)."""
        return cls([], inputs)

    def _hash(self, paths: list[Path]) -> None:
        try:
            self._result = [fingerprint(p) for p in paths]
        except BaseException as exc:  # handed to the reader at result()
            self._error = exc

    def result(self) -> list[InputFile]:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def locate(source: Source) -> list[Path]:
    """The files a local source reads, in a stable order; an error when there are none."""
    return locate_all(source)[0]


_NOT_DATA = ("SOURCE.md", "README.md", "LICENSE", "LICENSE.txt", "LICENSE.md")


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def locate_all(source: Source) -> tuple[list[Path], list[Path]]:
    """The files a local source reads, and the files of its folder skipped for their extension
    (so the user can be told: a folder of .tsv or .arrow files must not lose data silently)."""
    where = f"sources.{source.name}.path"
    raw = source.path
    if any(ch in raw for ch in "*?["):
        matches = sorted(Path(p) for p in globlib.glob(raw, recursive=True) if Path(p).is_file())
        if not matches:
            raise DataError(f"{where}: the glob {raw!r} matched no files; check the pattern and "
                            "that it is relative to the recipe file")
        return matches, []
    path = Path(raw)
    if not path.exists():
        raise DataError(f"{where}: {raw} does not exist (paths in a recipe are relative to the "
                        "recipe file; paths given with --set are relative to the current folder)")
    if path.is_file():
        return [path], []
    if is_hf_disk_dataset(path):
        return sorted(p for p in path.rglob("*") if p.is_file()), []
    split_all = _split_files(path / "data", source.split)
    split_files = [p for p in split_all if _suffix(p) in SUFFIXES]
    if split_files:  # the Hugging Face layout (e.g. a mixer output): data/{split}-*.{parquet,jsonl} or data/{split}/
        return split_files, [p for p in split_all if p not in split_files]
    candidates = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path)
                        and p.name not in _NOT_DATA)
    files = [p for p in candidates if _suffix(p) in SUFFIXES]
    if not files:
        raise DataError(f"{where}: the folder {raw} holds no readable files "
                        f"(looked for {', '.join(SUFFIXES)})")
    return files, [p for p in candidates if _suffix(p) not in SUFFIXES]


def _split_files(data: Path, split: str) -> list[Path]:
    """A split's files in the Hugging Face layout: ``data/{split}-*`` files, or the files of a
    ``data/{split}/`` folder (a ``llama-factory`` output: its trainer names a split by one path)."""
    if not data.is_dir():
        return []
    folder = data / split
    found = folder.iterdir() if folder.is_dir() else data.glob(f"{globlib.escape(split)}-*")
    return sorted(p for p in found if p.is_file() and not p.name.startswith("."))


def splits(raw: str) -> list[str]:
    """The splits a local dataset holds: ``data/{split}-*`` files or ``data/{split}/`` folders
    (the Hugging Face layout, e.g. a mixer output) or a ``save_to_disk`` DatasetDict's;
    ``["train"]`` for anything else."""
    path = Path(raw)
    found: set[str] = set()
    if (path / "dataset_dict.json").is_file():
        try:
            found = set(json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", []))
        except (OSError, ValueError):
            found = set()
    elif path.is_dir() and (path / "data").is_dir():
        found = {p.name.split("-", 1)[0] for p in (path / "data").iterdir()
                 if p.is_file() and "-" in p.name and _suffix(p) in SUFFIXES}
        found |= {p.name for p in (path / "data").iterdir()
                  if p.is_dir() and any(_suffix(f) in SUFFIXES for f in _split_files(path / "data", p.name))}
    order = {"train": 0, "validation": 1, "test": 2}
    return sorted(found, key=lambda s: (order.get(s, 3), s)) or ["train"]


def is_hf_disk_dataset(path: Path) -> bool:
    """A folder written by ``datasets`` ``save_to_disk`` (a Dataset or a DatasetDict)."""
    return path.is_dir() and any((path / marker).exists() for marker in _HF_DISK_MARKERS)


@dataclass(frozen=True)
class Part:
    """One input file (or one loaded dataset) and a lazy iterator over its records: formats are
    detected per part, so a folder of JSON Lines chats and CSV prompts reads each file right."""

    label: str
    path: Path | None  # None for a Hub dataset
    records: Iterator[Located]
    # Arrow-backed inputs (Hub, save_to_disk, Parquet): its record batches from the first row
    # again, for the batch reader; row k of them is record k + 1 of ``records``.
    batches: Callable[[], Iterator[Any]] | None = None
    # a JSON (.json) file: its check as one top-level array, which ``records`` made; the batch
    # reader takes the items' text from it rather than decoding every item again
    scan: ArrayScan | None = None


def read(source: Source) -> tuple[list[InputFile], Iterator[Located]]:
    """Fingerprint the inputs and return an iterator over their records."""
    inputs, parts, _ = read_parts(source)
    return inputs.result(), (item for part in parts for item in part.records)


def read_parts(source: Source) -> tuple[Fingerprints, list[Part], list[Path]]:
    """Start fingerprinting the inputs; return one lazy :class:`Part` per file and the files
    skipped for their extension."""
    if source.is_hub:
        ds = _load_hub(source)
        fp = InputFile(source.path, int(ds.data.nbytes), getattr(ds, "_fingerprint", "") or "")
        label = source.path.removeprefix(HUB_PREFIX)
        table = _arrow_table(ds)
        return Fingerprints.known([fp]), [Part(label, None, _from_arrow(table, label), _table_batches(table))], []
    files, skipped = locate_all(source)
    inputs = Fingerprints(files)
    root = Path(source.path)
    if is_hf_disk_dataset(root):
        table = _hf_disk_table(source, root)
        return inputs, [Part(root.name, root, _from_arrow(table, root.name), _table_batches(table))], []
    base = root if root.is_dir() else root.parent
    base = base if base.exists() else Path(".")
    parts = []
    for path in files:
        label = _label(path, base) if path != base else path.name
        batches = _parquet_batches(path) if _suffix(path) == ".parquet" else None
        scan = ArrayScan(path) if _suffix(path) in (".json", ".json.gz") else None
        parts.append(Part(label, path, records_of(path, label, source.max_record_mb, scan), batches, scan))
    return inputs, parts, skipped


def _label(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return path.name


def iter_records(files: list[Path], base: Path, limit_mb: float = 16.0) -> Iterator[Located]:
    """Records of local files by suffix, labelled relative to ``base``."""
    for path in files:
        yield from records_of(path, _label(path, base) if path != base else path.name, limit_mb)


JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


def records_of(path: Path, label: str, limit_mb: float = 16.0, scan: ArrayScan | None = None) -> Iterator[Located]:
    """Records of one local file, chosen by its suffix; lazy (nothing is read before the first).
    ``scan``: a JSON array file's scan, to share with the batch reader."""
    suffix = _suffix(path)
    if suffix in JSONL_SUFFIXES:
        yield from _read_jsonl(path, label, limit_mb=limit_mb)
    elif suffix in (".json", ".json.gz"):
        yield from _read_json(path, label, scan or ArrayScan(path))
    elif suffix == ".parquet":
        yield from _read_parquet(path, label)
    elif suffix in (".csv", ".csv.gz"):
        yield from _read_csv(path, label)
    elif suffix in (".txt", ".md"):
        yield from _read_text(path, label)
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; supported: {', '.join(SUFFIXES)}")


def _open_bytes(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _excerpt(raw: bytes | str, limit: int = 2000) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def json_problem(exc: json.JSONDecodeError) -> tuple[str, str]:
    """``json``'s message and its position: some messages already end in "at"
    ("Unterminated string starting at"), which must not become "at at"."""
    msg = exc.msg[:-3] if exc.msg.endswith(" at") else exc.msg
    return f"malformed JSON: {msg}", f"column {exc.colno}"


# A \uD800-\uDFFF escape: only then can decoded JSON hold a lone surrogate (pairs are fine).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


SURROGATE = ("a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair, e.g. half an emoji) in a "
             "string: not valid Unicode")


def lone_surrogate(value: Any) -> str | None:
    """The reason a decoded JSON value cannot be UTF-8 (a lone UTF-16 surrogate), or None."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE
    return None


def parse_object(raw: bytes) -> dict[str, Any] | Unreadable:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Unreadable("not valid UTF-8 (re-encode the file as UTF-8)", _excerpt(raw), at=f"byte {exc.start}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        reason, at = json_problem(exc)
        return Unreadable(reason, _excerpt(text), at=at)
    if not isinstance(value, dict):
        return Unreadable(f"expected a JSON object per line, got {type(value).__name__}", _excerpt(text))
    if _SURROGATE_ESCAPE.search(raw):  # rare: checked only when such an escape is present
        problem = lone_surrogate(value)
        if problem:
            return Unreadable(problem, _excerpt(text))
    return value


def _read_jsonl(path: Path, label: str, *, array_ok: bool = False, limit_mb: float = 16.0) -> Iterator[Located]:
    for lineno, raw in raw_lines(path, array_ok=array_ok, limit_mb=limit_mb):
        yield Located(label, lineno, raw if isinstance(raw, Unreadable) else parse_object(raw))


LINE_BLOCK = 8 << 20  # bytes of a JSON Lines file split into lines at once (about 10,000 chat lines: a batch
#                       costs about 10 ms whatever its size, so smaller blocks of long lines cost time)


@dataclass(frozen=True)
class LineBlock:
    """Consecutive non-blank lines of a JSON Lines file, split in bulk: their 1-based numbers,
    their text (null where a line is not UTF-8 or is over the size limit) and, on demand, each
    line's bytes (or its :class:`Unreadable`)."""

    data: bytes
    numbers: np.ndarray  # int64, increasing
    starts: np.ndarray
    ends: np.ndarray
    texts: pl.Series
    too_large: dict[int, Unreadable]  # line number -> record

    def raw(self, number: int) -> bytes | Unreadable:
        if number in self.too_large:
            return self.too_large[number]
        i = int(np.searchsorted(self.numbers, number))
        return self.data[int(self.starts[i]):int(self.ends[i])]

    def slices(self, lines: int) -> Iterator[LineBlock]:
        """This block in even pieces of at most ``lines`` lines, sharing its bytes (a batch costs
        about 10 ms whatever its size: a block of 10,300 lines is two of 5,150, not 10,000 and 300)."""
        n = len(self.numbers)
        count = -(-n // lines)
        bounds = [n * i // count for i in range(count + 1)]  # sizes differ by one at most
        for a, b in zip(bounds, bounds[1:]):
            yield LineBlock(self.data, self.numbers[a:b], self.starts[a:b], self.ends[a:b], self.texts.slice(a, b - a),
                            self.too_large)


def line_blocks(path: Path, *, array_ok: bool = False, limit_mb: float = 16.0) -> Iterator[LineBlock]:
    """The non-blank lines of a JSON Lines file, a few megabytes at a time, split by numpy and
    decoded by Polars instead of line by line in Python (a BOM at the start dropped, as datasets
    and pandas accept it); a line over the size limit comes as an :class:`Unreadable`."""
    first_line = 1
    try:
        with _open_bytes(path) as fh:
            pending = bytearray()
            while True:
                more = fh.read(LINE_BLOCK)
                pending += more
                cut = pending.rfind(b"\n") + 1 if more else len(pending)  # 0: a line longer than a block so far
                data = bytes(pending[:cut])
                del pending[:cut]
                if first_line == 1 and data.startswith(codecs.BOM_UTF8):
                    data = data[len(codecs.BOM_UTF8):]
                if data:
                    block = _split(data, first_line, limit_mb, path, array_ok)
                    first_line += data.count(b"\n") + (not data.endswith(b"\n"))
                    if len(block.numbers):
                        yield block
                if not more:
                    return
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def _split(data: bytes, first_line: int, limit_mb: float, path: Path, array_ok: bool) -> LineBlock:
    import pyarrow as pa

    limit = int(limit_mb * 1_000_000)
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10) + 1
    if not len(ends) or ends[-1] != len(data):
        ends = np.append(ends, len(data))  # the file's last line, without a newline
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    starts = offsets[:-1]
    numbers = np.arange(first_line, first_line + len(ends), dtype=np.int64)
    lines = pl.from_arrow(pa.Array.from_buffers(pa.large_binary(), len(ends),
                                                [None, pa.py_buffer(offsets), pa.py_buffer(data)]))
    try:
        texts = lines.cast(pl.String)
    except pl.exceptions.PolarsError:  # a line that is not UTF-8: those lines' text is null
        texts = pl.Series([_utf8(data[a:b]) for a, b in zip(starts.tolist(), ends.tolist())], dtype=pl.String)
    large = np.flatnonzero(ends - starts > limit)
    too_large = {int(numbers[i]): Unreadable(
        f"record too large (limit {limit_mb:g} MB; raise max_record_mb for this source if it is real)",
        _excerpt(data[starts[i]:starts[i] + 4000]), where=f"{(ends[i] - starts[i]) / 1e6:.1f} MB") for i in large}
    if len(large):
        texts = texts.scatter(large, None)
    # Python's bytes.strip(): ASCII whitespace
    blank = texts.str.strip_chars(" \t\n\r\x0b\x0c").str.len_bytes().eq(0).fill_null(False).to_numpy()
    keep = np.flatnonzero(~blank)
    if first_line == 1 and len(keep) and keep[0] == 0 and 1 not in too_large and not array_ok:
        if data[:ends[0]].lstrip().startswith(b"["):
            raise DataError(f"{path} holds a JSON array, not JSON Lines (one object per line): "
                            "rename it to .json, or write one JSON object per line")
    return LineBlock(data, numbers[keep], starts[keep], ends[keep], texts.gather(keep), too_large)


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def raw_lines(path: Path, *, array_ok: bool = False, limit_mb: float = 16.0) -> Iterator[tuple[int, bytes | Unreadable]]:
    """The non-blank lines of a JSON Lines file with their 1-based numbers, undecoded (see
    :func:`line_blocks`)."""
    for block in line_blocks(path, array_ok=array_ok, limit_mb=limit_mb):
        for number, a, b in zip(block.numbers.tolist(), block.starts.tolist(), block.ends.tolist()):
            yield number, block.too_large.get(number) or block.data[a:b]


def _read_json(path: Path, label: str, scan: ArrayScan) -> Iterator[Located]:
    items = scan.items()  # a top-level array: each item decoded as it is asked for, so taking the
    if items is not None:  # first records to detect the format does not decode the whole file
        for i, item in items:
            yield Located(label, i, item if isinstance(item, Unreadable) else json.loads(item))
        return
    try:
        with _open_bytes(path) as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    if not data.strip():
        return
    try:
        value = json.loads(data.decode("utf-8-sig"))  # a leading BOM is accepted
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # one object per line: really JSONL
            yield from _read_jsonl(path, label, array_ok=True)
            return
        raise DataError(f"{path}:{exc.lineno}: {located(*json_problem(exc))}") from None
    check_surrogates = bool(_SURROGATE_ESCAPE.search(data))
    if isinstance(value, dict):
        lists = [k for k, v in value.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) == 1 and len(value) == 1:
            value = value[lists[0]]
        else:
            value = [value]
    if not isinstance(value, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(value).__name__}")
    for i, item in enumerate(value, start=1):
        yield Located(label, i, _array_item(i, item, check_surrogates))


def _array_item(i: int, item: Any, check_surrogates: bool) -> dict[str, Any] | Unreadable:
    """Item ``i`` (1-based) of a JSON array file as the record it is, or why it is not one."""
    problem = lone_surrogate(item) if check_surrogates else None
    if problem:
        return Unreadable(problem, _excerpt(json.dumps(item)), where=f"array item {i}")
    if isinstance(item, dict):
        return item
    return Unreadable(f"expected an object, got {type(item).__name__}", _excerpt(json.dumps(item, default=str)),
                      where=f"array item {i}")


_BLANK = re.compile(r"[ \t\n\r]*")  # what JSON allows between tokens


class ArrayScan:
    """One check of a file that is one top-level JSON array, shared by the records read to detect
    its format and by the batch reader (each would otherwise decode every item to find them).
    It holds the file's text until the batch reader takes it (:meth:`take`) or the reader is done
    with the file (:meth:`forget`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._scanned = False
        self._text = ""
        self._spans: list[tuple[int, int, Unreadable | None]] | None = None

    def items(self) -> Iterator[tuple[int, str | Unreadable]] | None:
        """The items of the file, if it is one top-level JSON array, each with its number (1-based)
        and its own JSON text, undecoded again, for the batch reader; an item that is no record
        comes as the :class:`Unreadable` the per-record reader gives. None for any other file (an
        object wrapping the array, JSON Lines named .json, invalid JSON): the per-record reader
        then reads it or says why not. The file is checked whole, on the first call only, before
        the first item is handed out."""
        if not self._scanned:
            self._text, self._spans = _array_spans(self.path)
            self._scanned = True
        if self._spans is None:
            return None
        text, spans = self._text, self._spans

        def items() -> Iterator[tuple[int, str | Unreadable]]:
            for i, (start, end, problem) in enumerate(spans, start=1):
                yield i, text[start:end] if problem is None else problem

        return items()

    def take(self) -> Iterator[tuple[int, str | Unreadable]] | None:
        """:meth:`items` for the last reader: the scan lets go of the text (its items keep it)."""
        items = self.items()
        self.forget()
        return items

    def forget(self) -> None:
        self._scanned, self._text, self._spans = False, "", None


def _array_spans(path: Path) -> tuple[str, list[tuple[int, int, Unreadable | None]] | None]:
    """The file's text and each item's span (or why it is no record); None spans when the file
    is not one plain array."""
    try:
        with _open_bytes(path) as fh:
            data = fh.read()
        text = data.decode("utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError):
        return "", None

    def skip(at: int) -> int:  # past the blanks from ``at``
        return _BLANK.match(text, at).end()  # type: ignore[union-attr]

    pos = skip(0)
    if not text.startswith("[", pos):
        return "", None
    decoder = json.JSONDecoder()  # what json.loads uses: the same values, errors and NaN handling
    check_surrogates = bool(_SURROGATE_ESCAPE.search(data))
    spans: list[tuple[int, int, Unreadable | None]] = []  # each item's text, or why it is no record
    pos = skip(pos + 1)
    closed = text.startswith("]", pos)
    while not closed:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return "", None
        record = _array_item(len(spans) + 1, value, check_surrogates)
        spans.append((pos, end, record if isinstance(record, Unreadable) else None))
        pos = skip(end)
        if text.startswith(",", pos):
            pos = skip(pos + 1)
        elif text.startswith("]", pos):
            closed = True
        else:
            return "", None
    if skip(pos + 1) != len(text):
        return "", None  # something after the array
    return text, spans


def _from_arrow(table: Any, label: str) -> Iterator[Located]:
    row = 0
    for batch in table.to_batches(max_chunksize=_BATCH):
        for record in batch.to_pylist():
            row += 1
            yield Located(label, row, record)


def _read_parquet(path: Path, label: str) -> Iterator[Located]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file: {exc}") from None
    row = 0
    for batch in parquet.iter_batches(batch_size=_BATCH):
        for record in batch.to_pylist():
            row += 1
            yield Located(label, row, record)


def _read_csv(path: Path, label: str) -> Iterator[Located]:
    import polars as pl

    try:
        with _open_bytes(path) as fh:
            data = fh.read()
        if not data.strip():
            return
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False, encoding="utf8")
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"{path}: not a readable CSV file: {_polars_reason(str(exc))}") from None
    for i, record in enumerate(frame.iter_rows(named=True), start=2):  # line 1 is the header
        yield Located(label, i, record)


def _polars_reason(message: str) -> str:
    """The part of a Polars CSV error a user can act on, on one line: its "Original error" when it
    has one (the rest suggests Polars options mixer does not expose)."""
    original = re.search(r"Original error: ```(.*?)```", message, re.S)
    text = ": ".join(original.group(1).strip().split("\n\n")) if original else message.split("\n\n")[0]
    text = " ".join(text.split())
    text = text if len(text) <= 300 else text[:300] + "..."
    if "not properly escaped" in text:
        text += " (a quote opened and never closed?)"
    return text


def _read_text(path: Path, label: str) -> Iterator[Located]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield Located(label, 1, Unreadable("not valid UTF-8 (re-encode the file as UTF-8)", "", at=f"byte {exc.start}"))
        return
    yield Located(label, 1, {"text": text, "title": path.stem})


def _table_batches(table: Any) -> Callable[[], Iterator[Any]]:
    """The table in slices of ``ARROW_BATCH`` rows (zero-copy ``pa.Table`` slices over its record
    batches). Not ``to_batches``: that keeps the table's own batches, and ``datasets`` writes
    1,000-row ones, so a Hub folder went through the batch reader 1,000 rows at a time (a batch
    costs about 10 ms whatever its size)."""
    return lambda: (table.slice(start, ARROW_BATCH) for start in range(0, table.num_rows, ARROW_BATCH))


def _parquet_batches(path: Path) -> Callable[[], Iterator[Any]]:
    def batches() -> Iterator[Any]:
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches(batch_size=ARROW_BATCH)
    return batches


def _hf_disk_table(source: Source, root: Path) -> Any:
    """The Arrow table of a ``save_to_disk`` folder (the recipe's split of a DatasetDict)."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(root))
    except Exception as exc:  # datasets raises many types for a damaged folder
        raise DataError(f"sources.{source.name}.path: {root} looks like a save_to_disk folder but "
                        f"could not be loaded: {exc}") from None
    return _arrow_table(_pick_split(loaded, source))


def _arrow_table(ds: Any) -> Any:
    """The pyarrow table behind a ``datasets.Dataset``, with any index mapping applied."""
    if getattr(ds, "_indices", None) is not None:
        ds = ds.flatten_indices()
    return ds.data.table


def _pick_split(loaded: Any, source: Source) -> Any:
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        if source.split not in loaded:
            raise DataError(f"sources.{source.name}.split: no split {source.split!r} in {source.path} "
                            f"(has: {', '.join(loaded.keys())}); set split = \"...\"")
        return loaded[source.split]
    return loaded


def _load_hub(source: Source) -> Any:
    """Load a Hub dataset through ``datasets.load_dataset``; never with remote code."""
    import datasets

    repo = source.path.removeprefix(HUB_PREFIX)
    try:
        ds = datasets.load_dataset(repo, name=source.config, data_dir=source.data_dir,
                                   revision=source.revision, split=source.split)
    except Exception as exc:  # network, auth, missing split: all reported the same way
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"sources.{source.name}.path: could not load {repo!r} from the Hugging Face Hub: {first}. "
            "If you are offline, download it first or point path at a local copy "
            f"(e.g. --set sources.{source.name}.path=./data/...)"
        ) from None
    return _pick_split(ds, source)
