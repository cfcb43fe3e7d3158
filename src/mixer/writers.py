"""Writers: canonical splits to files a trainer or ``datasets.load_dataset`` opens.

Files are named in the Hugging Face layout (``data/train-00000-of-00002.parquet``) so
``datasets.load_dataset(out_dir)`` finds the splits without a loading script. All writing
happens in a staging folder beside the target, renamed into place only when complete: an
interrupted or failed build leaves no output folder behind.
"""

from __future__ import annotations

import contextlib
from glob import escape as glob_escape
import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from mixer.errors import OutputError
from mixer.formats import FORMATS
from mixer.formats.common import no_gc, own_arrays

FILE_TYPES = ("parquet", "jsonl")  # what shards are written as


@dataclass(frozen=True)
class OutputFile:
    """One written file as the manifest reports it."""

    path: str  # relative to the output folder
    split: str
    rows: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "split": self.split, "rows": self.rows, "bytes": self.bytes,
                "sha256": self.sha256}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shard_plan(total: int, shard_rows: int) -> list[tuple[int, int]]:
    """(offset, length) of evenly sized shards of ``total`` rows (none for an empty split)."""
    if total <= 0:
        return []
    n = max(1, math.ceil(total / shard_rows))
    size = math.ceil(total / n)
    return [(i * size, min(size, total - i * size)) for i in range(n)]


ROW_GROUP = 50_000  # rows per Parquet row group of canonical shards


def _write_lines(lines: pl.Series, fh: Any) -> None:
    """Each string of ``lines`` and a newline, by Polars' CSV writer with one column, no header and
    no quoting: the bytes of each string as they are, then ``\n`` (a JSON line holds no raw newline),
    written from the column without a copy of it (500k OpenAI lines with tools, in a build: the
    copy with newlines added and its Arrow copy took 3.6 s)."""
    assert not lines.null_count(), "a batch converter made a null line"  # it would vanish from the file
    assert not lines.str.contains("\n", literal=True).any(), "a batch converter made a line with a newline"
    pl.DataFrame({"line": lines}).write_csv(fh, include_header=False, quote_style="never", line_terminator="\n")


def _json_line(row: dict[str, Any], known: dict[int, tuple[Any, str]]) -> str:
    """``json.dumps(row, ensure_ascii=False)``, with a last ``tools`` list of objects spliced in
    from each object's JSON text, made once per object (``known``, by identity): rows share
    their spec objects (:func:`mixer.formats.common.tools`), which are most of an OpenAI line."""
    specs = row.get("tools")
    if not specs or next(reversed(row)) != "tools" or not all(isinstance(s, dict) for s in specs):
        return json.dumps(row, ensure_ascii=False)
    texts = []
    for spec in specs:
        if id(spec) not in known:
            known[id(spec)] = (spec, json.dumps(spec, ensure_ascii=False))  # the object kept: its id stays its own
        texts.append(known[id(spec)][1])
    head = json.dumps({k: v for k, v in row.items() if k != "tools"}, ensure_ascii=False)
    return (head[:-1] + ", " if len(head) > 2 else "{") + '"tools": [' + ", ".join(texts) + "]}"


def _arrow_table(rows: list[dict[str, Any]], features: Any) -> Any:
    """Trainer-format rows as the Arrow table ``datasets`` makes of them (its features' schema and
    metadata), built by pyarrow in one call: ``Dataset.from_list`` encodes row by row in Python
    and hashes the data, 6x slower. ``Json`` values must be JSON text for that; rows in another
    shape (or without features) take ``datasets``' own path."""
    import datasets
    import pyarrow as pa

    if features is not None:
        schema = features.arrow_schema
        try:
            return pa.Table.from_pylist(rows, schema=_storage_schema(schema)).cast(schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            pass
    return datasets.Dataset.from_list(rows, features=features).data.table  # carries the features


def _storage_schema(schema: Any) -> Any:
    """``schema`` with each extension type (``Json``: ``arrow.json``) replaced by its storage type."""
    import pyarrow as pa

    def storage(t: Any) -> Any:
        if isinstance(t, pa.BaseExtensionType):
            return t.storage_type
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            make = pa.large_list if pa.types.is_large_list(t) else pa.list_
            return make(pa.field(t.value_field.name, storage(t.value_type), t.value_field.nullable))
        if pa.types.is_struct(t):
            return pa.struct([pa.field(f.name, storage(f.type), f.nullable) for f in t])
        return t

    return pa.schema([pa.field(f.name, storage(f.type), f.nullable) for f in schema], metadata=schema.metadata)


def shard_name(split: str, index: int, count: int, suffix: str, split_folder: bool = False) -> str:
    """``data/{split}-0000i-of-0000n.{suffix}``, or inside ``data/{split}/`` with ``split_folder``
    (for a trainer that names a split by one path, which then is the folder: see
    :attr:`mixer.formats.common.Format.split_folders`). Both are layouts ``datasets`` reads as splits."""
    folder = f"data/{split}" if split_folder else "data"
    return f"{folder}/{split}-{index:05d}-of-{count:05d}.{suffix}"


def write_shard(part: pl.DataFrame | list[dict[str, Any]] | Any, folder: Path, split: str, index: int, count: int,
                suffix: str, features: Any = None, split_folder: bool = False) -> OutputFile:
    """Write shard ``index`` of ``count`` of a split as ``folder/`` :func:`shard_name`.

    A DataFrame is canonical rows (Parquet or JSON Lines); a list (or an Arrow table, from a batch
    converter) is trainer-format rows, whose Parquet carries the format's features (e.g. ``Json``).
    """
    return write_pieces([part], folder, split, index, count, suffix, features, split_folder)


def write_pieces(parts: Iterable[pl.DataFrame | list[dict[str, Any]] | Any], folder: Path, split: str, index: int,
                 count: int, suffix: str, features: Any = None, split_folder: bool = False) -> OutputFile:
    """:func:`write_shard` of a shard given as its pieces' parts in order, each written as it comes
    (a streaming export converts a shard a slice at a time, so its converted rows are never all
    held). The bytes depend only on the rows, not on how they were cut into pieces or chunks:
    JSON Lines are appended; Parquet is written in row groups of :data:`ROW_GROUP` rows, each in
    arrays of its own."""
    rel = shard_name(split, index, count, suffix, split_folder)
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = _write_lines_of(parts, path) if suffix != "parquet" else _write_groups(parts, path, features)
    return OutputFile(rel, split, rows, path.stat().st_size, _sha256(path))


def _write_lines_of(parts: Iterable[Any], path: Path) -> int:
    """JSON Lines of canonical rows (a DataFrame), a batch converter's lines (a Series) or
    trainer-format rows (dicts, or an Arrow table), part after part; the rows written."""
    import pyarrow as pa

    rows = 0
    with path.open("wb") as fh:
        for part in parts:
            if isinstance(part, pl.DataFrame):
                part.write_ndjson(fh)
            elif isinstance(part, pl.Series):
                _write_lines(part, fh)
            else:
                known: dict[int, tuple[Any, str]] = {}
                with no_gc():
                    for row in part.to_pylist() if isinstance(part, pa.Table) else part:
                        fh.write((_json_line(row, known) + "\n").encode("utf-8"))
            rows += part.height if isinstance(part, pl.DataFrame) else len(part)
    return rows


def _write_groups(parts: Iterable[Any], path: Path, features: Any) -> int:
    """Parquet of canonical rows (DataFrames: through Arrow a row group at a time, since Polars
    sizes pages of gathered rows by the buffers they share) or trainer-format rows (Arrow tables
    or dicts, with the format's features), in row groups of exactly :data:`ROW_GROUP` rows (the
    last may be short), each made contiguous first: pyarrow cuts pages where the arrays it is
    given are cut, so the same rows chunked differently (in memory, streamed) gave other bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: Any = None
    pending: list[Any] = []  # Arrow tables not written yet, ``held`` rows, fewer than ROW_GROUP
    rows = held = 0

    def write(table: Any) -> None:
        nonlocal writer
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        if any(column.num_chunks > 1 for column in table.columns):  # one array a column (a copy)
            table = table.combine_chunks()
        writer.write_table(table, row_group_size=ROW_GROUP)

    try:
        for part in parts:
            if isinstance(part, pl.DataFrame):  # one group exported at a time: a whole shard's copy would double it
                groups = part.iter_slices(ROW_GROUP) if part.height else [part]
                tables: Iterable[Any] = (own_arrays(g).to_arrow() for g in groups)
            else:
                tables = [part if isinstance(part, pa.Table) else _arrow_table(part, features)]
            for table in tables:
                pending.append(table)
                rows += table.num_rows
                held += table.num_rows
                while held >= ROW_GROUP:
                    joined = pa.concat_tables(pending)
                    write(joined.slice(0, ROW_GROUP))
                    rest = joined.slice(ROW_GROUP)  # an empty rest is dropped: it would keep the group's arrays
                    pending, held = ([rest] if rest.num_rows else []), held - ROW_GROUP
        if writer is None or held:  # the rest; an empty shard is its schema
            write(pa.concat_tables(pending))
    finally:
        if writer is not None:
            writer.close()
    return rows


def join_splits(files: list[OutputFile], folder: Path) -> list[OutputFile]:
    """Each split's JSON Lines shards under ``folder`` joined into one file,
    ``data/{split}-00000-of-00001.jsonl``, in shard order (the concatenation of JSON Lines files is
    the file of all their rows), for a trainer that takes one file a split. Each shard is removed
    once copied, so the disk holds one shard more than the data at most."""
    out: list[OutputFile] = []
    for split in dict.fromkeys(f.split for f in files):
        parts = [f for f in files if f.split == split]
        rel = shard_name(split, 0, 1, "jsonl")
        if [f.path for f in parts] == [rel]:
            out += parts
            continue
        assert all(f.path.endswith(".jsonl") for f in parts), "only JSON Lines join by concatenation"
        digest, joined = hashlib.sha256(), folder / f"{rel}.joining"
        with joined.open("wb") as target:
            for f in parts:
                with (folder / f.path).open("rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 24), b""):
                        digest.update(block)
                        target.write(block)
                (folder / f.path).unlink()
        os.replace(joined, folder / rel)
        out.append(OutputFile(rel, split, sum(f.rows for f in parts), (folder / rel).stat().st_size, digest.hexdigest()))
    return out


def write_splits(splits: dict[str, pl.DataFrame], folder: Path, fmt: str, shard_rows: int) -> list[OutputFile]:
    """Write each non-empty split of canonical rows as evenly sized shards under ``folder/data``."""
    if fmt not in FILE_TYPES:
        raise OutputError(f"output: unknown file type {fmt!r}; expected one of {', '.join(FILE_TYPES)}")
    (folder / "data").mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[pl.DataFrame, str, int, int]] = []
    for split, frame in splits.items():
        shards = shard_plan(frame.height, shard_rows)
        jobs += [(frame.slice(offset, length), split, i, len(shards)) for i, (offset, length) in enumerate(shards)]
    # shards in threads, one per core: compressing a shard holds one core and lets go of the GIL
    # (500k rows in two shards: 1.7-2.2 -> 1.0 s, the same bytes)
    return _in_threads(lambda job: write_shard(job[0], folder, job[1], job[2], job[3], fmt), jobs,
                       max(1, min(len(jobs), pl.thread_pool_size(), 4)))


def _in_threads(write: Callable[[Any], OutputFile], jobs: list[Any], workers: int) -> list[OutputFile]:
    """``write`` of each job, in order, ``workers`` at a time. However it ends (an error, Ctrl-C, a
    kill), no job starts afterwards and the running ones finish before it comes out: the caller
    then removes the staging folder, which a thread still writing would bring back. (The pool's
    own shutdown is not enough: an interrupt can land between a worker starting and the pool
    counting it.)"""
    state = threading.Condition()
    running = [0]
    stopped = [False]

    def run(job: Any) -> OutputFile | None:
        with state:
            if stopped[0]:
                return None
            running[0] += 1
        try:
            return write(job)
        finally:
            with state:
                running[0] -= 1
                state.notify_all()

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(run, job) for job in jobs]
        return [f.result() for f in futures]  # type: ignore[misc]
    finally:
        while True:
            try:
                with state:
                    stopped[0] = True
                    while running[0]:
                        state.wait()
                break
            except KeyboardInterrupt:  # interrupted again while a shard finishes: still wait for it
                continue
        pool.shutdown(wait=False, cancel_futures=True)


def write_rows(splits: dict[str, Any], lengths: dict[str, list[int]], folder: Path, suffix: str,
               features: Any = None, split_folder: bool = False) -> list[OutputFile]:
    """Write trainer-format rows under ``folder/data``, shard ``i`` of a split holding the next
    ``lengths[split][i]`` rows (each split in a folder of its own with ``split_folder``)."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[Any, str, int, int]] = []
    for split, rows in splits.items():
        offset = 0
        for i, length in enumerate(lengths[split]):
            jobs.append((rows[offset : offset + length], split, i, len(lengths[split])))
            offset += length
        assert offset == len(rows), f"{split}: shards hold {offset} of {len(rows)} rows"
    # Parquet shards side by side (compression lets go of the GIL); JSON Lines are Python work, one at a time
    workers = max(1, min(len(jobs), pl.thread_pool_size(), 4)) if suffix == "parquet" else 1
    return _in_threads(lambda job: write_shard(job[0], folder, job[1], job[2], job[3], suffix, features, split_folder),
                       jobs, workers)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Small JSON-lines side files (rejects) written with the standard library."""
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


MARKER = "mixer"  # top-level manifest key that says mixer wrote the folder (its value: mixer's version)
# what a mixer output folder holds; anything else in it is someone else's and never replaced
OWN_ENTRIES = frozenset({"data", "manifest.json", "README.md", "rejects.jsonl", "removed.jsonl", "ratios.csv", "rows.parquet",
                         "report.html", ".report.html.tmp"} | {name for f in FORMATS.values() for name in f.side_files})


def foreign_entries(out_dir: Path) -> list[str] | None:
    """Entries of an existing ``out_dir`` that mixer did not write: ``None`` when it is not a mixer
    output at all (no manifest.json carrying mixer's marker), ``[]`` when everything in it is ours.

    A staged build's top folder owns the mixture folders its manifest lists.
    """
    manifest_path = out_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    versions = manifest.get("versions")
    if MARKER not in manifest and not (isinstance(versions, dict) and MARKER in versions):  # before the marker
        return None
    own = set(OWN_ENTRIES)
    if isinstance(manifest.get("mixtures"), dict):
        own |= set(manifest["mixtures"])
    return sorted(p.name + ("/" if p.is_dir() else "") for p in out_dir.iterdir()
                  if p.name not in own or (p.name == "data" and not p.is_dir()))


def _describe(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return shown or "nothing"


def check_target(out_dir: Path, force: bool) -> None:
    """Refuse to write over anything that is not ours; check the parent is writable.

    An empty folder is written into. ``force`` replaces a folder only when a previous mixer
    build or conversion wrote it (its manifest.json carries mixer's marker) and it holds
    nothing else: ``--force`` must never delete a repository, a dataset or notes someone keeps.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} exists and is not a folder; remove it or choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in out_dir.iterdir())
        foreign = foreign_entries(out_dir)
        if foreign is None:
            raise OutputError(
                f"{out_dir} exists and was not written by mixer (it holds {_describe(entries)}; no "
                f"manifest.json from a mixer build); nothing was touched. Choose another --out"
                + (" (--force replaces only folders mixer wrote)" if force else ""))
        if foreign:
            raise OutputError(
                f"{out_dir} holds a mixer output but also {_describe(foreign)}, which mixer did not "
                "write; nothing was touched. Move those elsewhere or choose another --out")
        if not force:
            raise OutputError(f"{out_dir} already exists; pass --force to replace it, or choose "
                              "another folder with --out")
    probe = out_dir.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot write to {out_dir}: {probe} is a file, not a folder; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {out_dir}: {probe} is not writable; choose another --out")


def _remove_stale_stages(out_dir: Path) -> None:
    """Staging folders of builds that were killed (their process is gone) are removed."""
    for stale in out_dir.parent.glob(f".{out_dir.name}.staging-*"):
        pid = stale.name.rsplit(".staging-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def staged(out_dir: Path, force: bool) -> Iterator[Path]:
    """Yield a staging folder beside ``out_dir``; on success it replaces ``out_dir`` atomically.

    On any error (or interrupt) the staging folder is removed and ``out_dir`` is untouched. A
    build killed outright leaves its staging folder, which the next build removes.
    """
    check_target(out_dir, force)
    prefix = f".{out_dir.name}.staging-{os.getpid()}-"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_stages(out_dir)
    except OSError as exc:
        raise OutputError(f"cannot write to {out_dir}: {exc.strerror or exc}; choose another --out") from None
    try:
        try:
            stage = Path(tempfile.mkdtemp(prefix=prefix, dir=out_dir.parent))
        except OSError as exc:
            raise OutputError(f"cannot write to {out_dir}: {exc.strerror or exc}; choose another --out") from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private; the output should not be
        yield stage
        check_target(out_dir, force)  # again: the folder may have changed during a long build
        if out_dir.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, trash / "old")
            os.replace(stage, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(stage, out_dir)
    except OSError as exc:
        _discard_stages(out_dir.parent, prefix)
        raise OutputError(f"writing {out_dir} failed: {exc.strerror or exc}; nothing was written") from None
    except BaseException:
        # also when an interrupt lands between mkdtemp creating the folder and its name being known
        _discard_stages(out_dir.parent, prefix)
        raise


def _discard_stages(parent: Path, prefix: str) -> None:
    """Remove this process's staging folders for one output (there is at most one)."""
    for stage in parent.glob(f"{glob_escape(prefix)}*"):
        shutil.rmtree(stage, ignore_errors=True)
