"""Executors: where a build's rows live between its stages, and how row-local steps run.

The build (:mod:`mixer.engine`) is described once; an executor only stores chunks and runs
row-local functions over them:

- :class:`InMemory`: one chunk per source, frames held in memory, nothing on disk; the output
  is the splits as frames (``Mixture.to_polars``), written when asked.
- :class:`LocalStreaming`: chunks of ``chunk_rows`` rows spilled as Parquet to a folder, so
  memory is bounded by the chunk size; output shards are written as they are assembled.

What an executor must provide (a cluster executor, e.g. Ray Data, implements the same calls
with tasks over blocks and shared storage): ``ingest`` (read a source chunk by chunk, running
a row-local function on each), ``map`` (run a row-local function on every chunk of a source
with a :class:`ChunkIO` to its stored frames, and that chunk's part of a key table, so each
task gets only its own rows), ``signature_table`` (gather near-dedup
signatures of given rows into one array for the global clustering step), ``shards`` (the
selected rows of a split assembled in final order, one output shard at a time),
``put_output`` (keep or write a converted shard; ``export`` runs both with a row-local
conversion per shard, or per piece of one where the executor writes pieces as they come) and ``output``/``close``. Global steps never
see an executor: they take and give small key tables.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
import tempfile
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import polars as pl

from mixer import formats, schema, writers
from mixer.dedup import gather_signatures
from mixer.recipe import Output as OutputSpec, Source
from mixer.sources.read import ReadReport, read_chunks, read_source

T = TypeVar("T")
#: rows per chunk of a streaming build: with the output shard, what sets its peak memory (README)
CHUNK_ROWS = 100_000
# one converted shard: canonical rows, or trainer-format rows (dicts, or an Arrow table in the format's features)
Part = pl.DataFrame | list[dict[str, Any]] | Any


class ChunkIO(Protocol):
    """A row-local step's access to the stored frames of one chunk of one source."""

    prio: int
    chunk: int

    def get(self, kind: str) -> pl.DataFrame: ...

    def put(self, kind: str, frame: pl.DataFrame) -> None: ...

    def put_array(self, kind: str, array: np.ndarray) -> None: ...

    def put_rows(self, split: str, rows: pl.DataFrame) -> None:
        """Selected rows of a split with their final position ``_pos`` and output ``_shard``."""


class Output(Protocol):
    """The built splits, wherever they live; what a :class:`mixer.mixture.Mixture` holds."""

    rejects: dict[str, list[dict[str, Any]]]  # export rejects per split
    provenance: pl.DataFrame | None  # split, source, id of each written trainer-format row, in order

    def frames(self) -> dict[str, pl.DataFrame]: ...

    def exported(self) -> dict[str, formats.Exported]: ...

    def write(self, folder: Path) -> list[writers.OutputFile]:
        """Put the data files into ``folder`` (a staging folder) and describe them."""


@dataclass
class _IO:
    executor: Executor
    prio: int
    chunk: int

    def get(self, kind: str) -> pl.DataFrame:
        return self.executor.get(self.prio, self.chunk, kind)

    def put(self, kind: str, frame: pl.DataFrame) -> None:
        self.executor.put(self.prio, self.chunk, kind, frame)

    def put_array(self, kind: str, array: np.ndarray) -> None:
        self.executor.put_array(self.prio, self.chunk, kind, array)

    def put_rows(self, split: str, rows: pl.DataFrame) -> None:
        self.executor.put_rows(split, self.prio, self.chunk, rows)


class Beside:
    """One write at a time in a thread, beside the work on the same rows: :meth:`start` waits for
    the write before it (so at most one is pending), :meth:`wait` and leaving the ``with`` block
    wait for the last one, and a write's error comes out there."""

    def __enter__(self) -> Beside:
        self._pool = ThreadPoolExecutor(1)
        self._pending: Any = None
        return self

    def start(self, fn: Callable[..., Any], *args: Any) -> None:
        self.wait()
        self._pending = self._pool.submit(fn, *args)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is None:
                self.wait()
        finally:
            self._pool.shutdown(wait=True)


class Executor(ABC):
    """The loops over chunks (sequential here); subclasses decide where frames are kept."""

    name = "base"
    #: how rows are cut into chunks: executors that cut alike share cached preparations
    chunking = "base"
    #: row-local work runs in this process (so token counts use this process's workers)
    in_process = True
    #: gather hands a chunk's selected rows on in groups of whole shards of about this many rows
    #: (None: all at once), so its working set is a group's, not a second copy of the chunk
    gather_rows: int | None = None

    def __init__(self) -> None:
        self.chunks: dict[int, int] = {}  # source priority -> chunk count

    # -- row-local work
    @abstractmethod
    def read(self, src: Source) -> tuple[ReadReport, Iterator[pl.DataFrame]]:
        raise NotImplementedError

    def ingest(self, prio: int, src: Source, fn: Callable[[ChunkIO, pl.DataFrame], T]) -> tuple[ReadReport, list[T]]:
        """Read ``src`` chunk by chunk; store each as ``raw`` and run ``fn`` on it, at the same time
        (a spilled chunk's write, mostly compression, overlaps its dedup keys)."""
        report, chunks = self.read(src)
        results = []
        self.chunks[prio] = 0
        with Beside() as writes:
            for c, chunk in enumerate(chunks):
                io = _IO(self, prio, c)
                writes.start(io.put, "raw", chunk)
                self.chunks[prio] = c + 1
                results.append(fn(io, chunk))
                writes.wait()
        return report, results

    def map(self, prio: int, fn: Callable[[ChunkIO, Any], T], parts: Mapping[int, Any]) -> list[T]:
        """Run the row-local ``fn`` on every chunk of source ``prio``, in chunk order, with the
        chunk's part (``parts[chunk]``, None when it has none)."""
        return [fn(_IO(self, prio, c), parts.get(c)) for c in range(self.chunks.get(prio, 0))]

    # -- storage
    @abstractmethod
    def get(self, prio: int, c: int, kind: str) -> pl.DataFrame:
        raise NotImplementedError

    @abstractmethod
    def put(self, prio: int, c: int, kind: str, frame: pl.DataFrame) -> None:
        raise NotImplementedError

    def stored_file(self, prio: int, c: int, kind: str) -> Path | None:
        """The Parquet file a chunk's frame is kept in, if the executor keeps it in one: a cache
        entry then takes its bytes instead of decoding and encoding the rows again."""
        return None

    def put_file(self, prio: int, c: int, kind: str, path: Path) -> None:
        """A stored frame from a Parquet file (a cache entry); executors may read it only when asked."""
        self.put(prio, c, kind, pl.read_parquet(path))

    def discard(self, prio: int, kind: str) -> None:
        """Forget ``kind`` frames of a source no later stage reads."""

    @abstractmethod
    def put_array(self, prio: int, c: int, kind: str, array: np.ndarray) -> None:
        raise NotImplementedError

    @abstractmethod
    def get_array(self, prio: int, c: int, kind: str) -> np.ndarray:
        raise NotImplementedError

    def signature_table(self, rows: pl.DataFrame, width: int) -> np.ndarray:
        """The ``sig`` arrays' rows named by ``rows`` (``_prio, _chunk, _sig``), in that order."""
        return gather_signatures(rows, lambda prio, c: self.get_array(prio, c, "sig"),
                                 np.empty((rows.height, width), dtype=np.uint32))

    @abstractmethod
    def put_rows(self, split: str, prio: int, c: int, rows: pl.DataFrame) -> None:
        raise NotImplementedError

    @abstractmethod
    def shards(self, split: str, total: int, output: OutputSpec) -> Iterator[tuple[int, int, pl.DataFrame]]:
        """``(index, count, rows in final order)`` of each assembled output group of a split."""
        raise NotImplementedError

    def export(self, split: str, total: int, output: OutputSpec,
               convert: Callable[[pl.DataFrame], tuple[Part, T]]) -> list[T]:
        """Each output shard of ``split`` assembled in final order, converted by the row-local
        ``convert`` (which returns a part and a small summary) one :meth:`pieces` at a time, and
        kept or written with :meth:`put_output`; the summaries in order."""
        done: list[T] = []
        for index, count, frame in self.shards(split, total, output):
            self.put_output(split, index, count, frame, self.converted(frame, convert, done))
            del frame  # not held while the next shard is read and assembled
        return done

    def pieces(self, frame: pl.DataFrame) -> list[pl.DataFrame]:
        """The slices of an assembled shard converted one at a time: the whole shard, unless the
        executor writes its file piece by piece."""
        return [frame]

    def converted(self, frame: pl.DataFrame, convert: Callable[[pl.DataFrame], tuple[Part, T]],
                  summaries: list[T]) -> Iterator[Part]:
        """The converted part of each of the shard's :meth:`pieces`, made as it is consumed (so one
        is held at a time); each one's summary is added to ``summaries``."""
        for piece in self.pieces(frame):
            part, summary = convert(piece)
            summaries.append(summary)
            yield part

    @abstractmethod
    def put_output(self, split: str, index: int, count: int, frame: pl.DataFrame, parts: Iterator[Part]) -> None:
        """Keep or write one converted group of the split (its pieces' ``parts``, in order);
        ``frame`` is its canonical rows."""
        raise NotImplementedError

    @abstractmethod
    def output(self, convert: Callable[[pl.DataFrame], formats.Exported] | None) -> Output:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the build stored (a failed build calls it too)."""

    def describe(self) -> dict[str, Any]:
        """Where the build ran, beyond the executor's name, for the manifest's ``run`` section."""
        return {}


def _assemble(pieces: list[pl.DataFrame]) -> pl.DataFrame:
    """Selected rows in final order: contiguous first (a gather over chunked nested columns is
    ten times slower), then by position."""
    if not pieces:
        return schema.empty()
    frame = pl.concat(pieces) if len(pieces) > 1 else pieces[0]
    return frame.rechunk().sort("_pos").select(schema.COLUMNS)


class InMemory(Executor):
    """One chunk per source, every frame in memory; the library's default."""

    name = "memory"
    chunking = "memory"

    def __init__(self) -> None:
        super().__init__()
        self._frames: dict[tuple[int, int, str], pl.DataFrame] = {}
        self._arrays: dict[tuple[int, int, str], np.ndarray] = {}
        self._rows: dict[str, list[pl.DataFrame]] = {}
        self._out = MemoryOutput({}, {}, {})

    def read(self, src: Source) -> tuple[ReadReport, Iterator[pl.DataFrame]]:
        frame, report = read_source(src)
        return report, iter([frame])

    def get(self, prio: int, c: int, kind: str) -> pl.DataFrame:
        frame = self._frames[(prio, c, kind)]
        if isinstance(frame, Path):  # a cached frame, read on first use (repeats may never need it)
            frame = self._frames[(prio, c, kind)] = pl.read_parquet(frame)
        return frame

    def put(self, prio: int, c: int, kind: str, frame: pl.DataFrame) -> None:
        self._frames[(prio, c, kind)] = frame

    def put_file(self, prio: int, c: int, kind: str, path: Path) -> None:
        self._frames[(prio, c, kind)] = path  # type: ignore[assignment]

    def discard(self, prio: int, kind: str) -> None:
        for key in [k for k in self._frames if k[0] == prio and k[2] == kind]:
            del self._frames[key]

    def put_array(self, prio: int, c: int, kind: str, array: np.ndarray) -> None:
        self._arrays[(prio, c, kind)] = array

    def get_array(self, prio: int, c: int, kind: str) -> np.ndarray:
        return self._arrays[(prio, c, kind)]

    def put_rows(self, split: str, prio: int, c: int, rows: pl.DataFrame) -> None:
        self._rows.setdefault(split, []).append(rows)

    def shards(self, split: str, total: int, output: OutputSpec) -> Iterator[tuple[int, int, pl.DataFrame]]:
        # the whole split at once: Mixture.write shards it, to_polars hands it out
        self._out.spec = output
        yield 0, 1, _assemble(self._rows.pop(split, []))

    def put_output(self, split: str, index: int, count: int, frame: pl.DataFrame, parts: Iterator[Part]) -> None:
        (part,) = parts  # the whole split: one piece
        self._out.splits[split] = frame
        if not isinstance(part, pl.DataFrame):
            self._out.rows[split] = part

    def output(self, convert: Callable[[pl.DataFrame], formats.Exported] | None) -> Output:
        self._frames.clear()  # every row the mixture holds is in its assembled splits now
        self._arrays.clear()
        return self._out


@dataclass
class MemoryOutput:
    """Splits held as frames (canonical) or converted rows (trainer formats)."""

    splits: dict[str, pl.DataFrame]
    rows: dict[str, Any]  # per split: trainer-format rows (dicts, or an Arrow table)
    rejects: dict[str, list[dict[str, Any]]]
    spec: OutputSpec | None = None
    provenance: pl.DataFrame | None = None

    def frames(self) -> dict[str, pl.DataFrame]:
        return dict(self.splits)

    def exported(self) -> dict[str, formats.Exported]:
        return {name: formats.Exported.of(part, self.rejects.get(name, [])) for name, part in self.rows.items()}

    def write(self, folder: Path) -> list[writers.OutputFile]:
        assert self.spec is not None
        fmt = formats.FORMATS[self.spec.format]
        if fmt.converts:
            lengths = {name: written_per_shard(self.splits[name], self.rejects.get(name, []), self.spec.shard_rows)
                       for name in self.rows}
            if fmt.one_file_per_split:  # written as one file at once rather than joined afterwards
                lengths = {name: [sum(each)] if each else [] for name, each in lengths.items()}
            return writers.write_rows(self.rows, lengths, folder, self.spec.file,
                                      fmt.features() if fmt.features else None, fmt.split_folders)
        return writers.write_splits(self.splits, folder, self.spec.file, self.spec.shard_rows)


def written_per_shard(frame: pl.DataFrame, rejects: list[dict[str, Any]], shard_rows: int) -> list[int]:
    """Rows each trainer-format shard of a split holds: shards are cut on the selected rows (as a
    streaming build cuts them before converting each), less the rows of that shard the format
    rejected. So an in-memory and a streaming build write the same files."""
    gone = frame.get_column("id").is_in(pl.Series([r["id"] for r in rejects], dtype=pl.String).implode()).to_numpy()
    lengths = [length - int(gone[offset:offset + length].sum())
               for offset, length in writers.shard_plan(frame.height, shard_rows)]
    return lengths if any(lengths) else []  # nothing written: no data file, as for an empty split


#: spill files are read back once by this build: the fastest zstd level and no statistics
#: (a 100k-row chunk of augmented chats: 0.31 -> 0.27 s to write, 26 -> 34 MB)
SPILL_PARQUET: dict[str, Any] = {"compression": "zstd", "compression_level": 1, "statistics": False}


class LocalStreaming(Executor):
    """Chunks of ``chunk_rows`` rows through a spill folder: memory bounded by the chunk size.

    ``spill`` is the folder to use (created; removed by :meth:`close`); by default a temporary
    folder, removed when the built mixture is garbage collected.
    """

    name = "stream"
    chunking = "stream"
    gather_rows = 20_000
    #: rows converted at a time for an output shard in a trainer format, written as they come: a
    #: shard's converted rows are never all held (250k OpenAI rows with tools: 0.6 GB of lines)
    export_rows = 50_000

    def __init__(self, chunk_rows: int = CHUNK_ROWS, spill: Path | None = None) -> None:
        super().__init__()
        if chunk_rows < 1:
            from mixer.errors import RecipeError

            raise RecipeError(f"chunk_rows must be at least 1, got {chunk_rows}")
        self.chunk_rows = chunk_rows
        if spill is None:
            self.folder = Path(tempfile.mkdtemp(prefix="mixer-spill-"))
        else:
            self.folder = Path(spill)
            self.folder.mkdir(parents=True)
        self._pieces = 0
        self._out: SpillOutput | None = None
        self._files: list[writers.OutputFile] = []
        self._shards: dict[str, int] = {}
        self._spec: OutputSpec | None = None

    def read(self, src: Source) -> tuple[ReadReport, Iterator[pl.DataFrame]]:
        return read_chunks(src, self.chunk_rows)

    def _path(self, prio: int, c: int, kind: str, suffix: str = "parquet") -> Path:
        return self.folder / f"{prio}-{c}.{kind}.{suffix}"

    def get(self, prio: int, c: int, kind: str) -> pl.DataFrame:
        return pl.read_parquet(self._path(prio, c, kind))

    def put_file(self, prio: int, c: int, kind: str, path: Path) -> None:
        shutil.copyfile(path, self._path(prio, c, kind))  # bytes, not a decode and re-encode

    def stored_file(self, prio: int, c: int, kind: str) -> Path | None:
        path = self._path(prio, c, kind)
        return path if path.is_file() else None

    def put(self, prio: int, c: int, kind: str, frame: pl.DataFrame) -> None:
        frame.write_parquet(self._path(prio, c, kind), **SPILL_PARQUET)

    def discard(self, prio: int, kind: str) -> None:
        for c in range(self.chunks.get(prio, 0)):
            self._path(prio, c, kind).unlink(missing_ok=True)

    def put_array(self, prio: int, c: int, kind: str, array: np.ndarray) -> None:
        np.save(self._path(prio, c, kind, "npy"), array)

    def get_array(self, prio: int, c: int, kind: str) -> np.ndarray:
        return np.load(self._path(prio, c, kind, "npy"), mmap_mode="r")

    def signature_table(self, rows: pl.DataFrame, width: int) -> np.ndarray:
        # a memory map in the spill folder: the operating system pages it, not the build
        path = self.folder / f"signatures-{self._pieces}.npy"
        self._pieces += 1
        table = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint32, shape=(rows.height, width))
        return gather_signatures(rows, lambda prio, c: self.get_array(prio, c, "sig"), table)

    def put_rows(self, split: str, prio: int, c: int, rows: pl.DataFrame) -> None:
        # one shard's piece at a time (partitioning all at once copies the chunk's rows whole)
        for shard in rows.get_column("_shard").unique().sort().to_list():
            folder = self.folder / "rows" / split / f"{shard:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            self._write_piece(rows.filter(pl.col("_shard") == shard).drop("_shard"), folder / f"{prio}-{c}.parquet")

    def _write_piece(self, frame: pl.DataFrame, path: Path) -> None:
        frame.write_parquet(path, **SPILL_PARQUET)

    def _pieces_of(self, split: str, index: int) -> list[Path]:
        return sorted((self.folder / "rows" / split / f"{index:05d}").glob("*.parquet"))

    def shards(self, split: str, total: int, output: OutputSpec) -> Iterator[tuple[int, int, pl.DataFrame]]:
        self._spec = output
        count = len(writers.shard_plan(total, output.shard_rows))
        self._shards[split] = count
        for i in range(count):
            yield i, count, _assemble([pl.read_parquet(self._pieces_of(split, i))])

    def pieces(self, frame: pl.DataFrame) -> list[pl.DataFrame]:
        # written piece by piece, the same bytes (writers.write_pieces); canonical rows are not
        # converted, so they are one piece
        assert self._spec is not None
        if not formats.FORMATS[self._spec.format].converts or frame.height <= self.export_rows:
            return [frame]
        return list(frame.iter_slices(self.export_rows))

    def put_output(self, split: str, index: int, count: int, frame: pl.DataFrame, parts: Iterator[Part]) -> None:
        self._files.append(self._write_shard(parts, self.folder / "final", split, index, count))

    def _write_shard(self, parts: Iterator[Part], folder: Path, split: str, index: int, count: int) -> writers.OutputFile:
        """Shard ``index`` of ``count`` of a split in the output format, under ``folder/data``,
        from its pieces' converted parts."""
        spec = self._spec
        assert spec is not None
        fmt = formats.FORMATS[spec.format]
        return writers.write_pieces(parts, folder, split, index, count, spec.file,
                                    fmt.features() if fmt.features else None, fmt.split_folders)

    def output(self, convert: Callable[[pl.DataFrame], formats.Exported] | None) -> Output:
        for prio in self.chunks:  # the chunks are no longer needed; the selected rows are
            for kind in ("raw", "clean", "ready"):
                self.discard(prio, kind)
        for stale in self.folder.glob("*.npy"):
            stale.unlink()
        self._out = SpillOutput(self.folder, list(self._files), {}, dict(self._shards), convert)
        return self._out

    def close(self) -> None:
        if self._out is None:  # failed build, or a wrapper that owns the folder
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            self._out.close()


@dataclass
class SpillOutput:
    """Shards already written in the spill folder; the selected rows kept beside them."""

    folder: Path
    files: list[writers.OutputFile]
    rejects: dict[str, list[dict[str, Any]]]
    shards: dict[str, int]
    convert: Callable[[pl.DataFrame], formats.Exported] | None
    provenance: pl.DataFrame | None = None
    _cleanup: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder, True)

    def close(self) -> None:
        self._cleanup()

    def frames(self) -> dict[str, pl.DataFrame]:
        out = {}
        for split, count in self.shards.items():
            parts = [_assemble([pl.read_parquet(sorted((self.folder / "rows" / split / f"{i:05d}").glob("*")))])
                     for i in range(count)]
            out[split] = pl.concat(parts) if parts else schema.empty()
        return out

    def exported(self) -> dict[str, formats.Exported]:
        if self.convert is None:
            return {}
        return {name: self.convert(frame) for name, frame in self.frames().items()}

    def write(self, folder: Path) -> list[writers.OutputFile]:
        (folder / "data").mkdir(parents=True, exist_ok=True)
        for f in self.files:
            source, target = self.folder / "final" / f.path, folder / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)  # same file system (the spill inside the staging folder): no copy
            except OSError:
                shutil.copyfile(source, target)
        return list(self.files)
