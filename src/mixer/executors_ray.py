"""The Ray executor: row-local work as Ray tasks, global steps on the driver, the same bytes.

:class:`RayExecutor` keeps a build's chunks exactly where :class:`~mixer.executors.LocalStreaming`
keeps them (Parquet and ``.npy`` files in a spill folder, which on a cluster must be storage
every node sees) and differs only in where the row-local functions run:

- ``ingest``: the driver reads and normalises each source chunk by chunk with the same readers
  and adapters as locally (ids of repeated rows depend on reading a source in order, and the
  rejects must be the same), stores the chunk and hands the row-local part (dedup keys,
  near-dedup signatures) to a task while it reads the next chunk;
- ``map`` (prepare, re-sizing repeats, gather): one task per chunk, given only its chunk's part
  of the key table; a task reads and writes the chunk's frames by path through a copy of the
  executor that carries only the spill folder, and returns small key tables to the driver,
  which keeps them in chunk order;
- ``export``: one task per output shard (assemble its pieces in final order, convert, write).

Global steps (dedup marking, selection, order) run on the driver on key tables, as locally.
Every file a task writes has a deterministic name and is written under a staging name and
renamed, output shards too, so a retried task (a worker lost mid-write, speculative execution)
replaces its output whole and never leaves a partial or duplicate piece. Ray is imported only
here (the ``ray`` extra).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl

from mixer import writers
from mixer.errors import MixerError, RecipeError
from mixer.executors import CHUNK_ROWS, SPILL_PARQUET, ChunkIO, LocalStreaming, Part, _IO, _assemble
from mixer.recipe import Output as OutputSpec, Source
from mixer.sources.read import ReadReport
from mixer.tokens import WORKERS_ENV

T = TypeVar("T")

INSTALL = "the ray engine needs Ray: pip install 'mixer[ray]'"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RecipeError(INSTALL) from None
    return ray


def _staged(path: Path) -> Path:
    """A unique sibling name to write ``path`` under before renaming it into place."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _run(executor: RayExecutor, fn: Callable[..., Any], prio: int, c: int, with_chunk: bool, part: Any = None) -> Any:
    """A task's body: ``fn`` on chunk ``c`` of source ``prio`` (and its ``part`` of a key table),
    frames read and written by path.

    A task holds one CPU, so it counts tokens in its own process: Ray runs the chunks side by side."""
    os.environ[WORKERS_ENV] = "1"
    io = _IO(executor, prio, c)
    return fn(io, io.get("raw")) if with_chunk else fn(io, part)


def _export(executor: RayExecutor, convert: Callable[[pl.DataFrame], tuple[Part, Any]], split: str, index: int,
            count: int) -> tuple[writers.OutputFile, list[Any]]:
    """A task's body: output shard ``index`` of ``split`` assembled from its pieces in final order,
    converted, and committed under its deterministic name; returns the file and the summaries."""
    os.environ[WORKERS_ENV] = "1"
    frame = _assemble([pl.read_parquet(executor._pieces_of(split, index))])
    summaries: list[Any] = []
    return executor._commit(split, index, count, executor.converted(frame, convert, summaries)), summaries


class RayExecutor(LocalStreaming):
    """Chunks in a spill folder (shared storage), row-local steps as Ray tasks.

    ``address`` is a running cluster's (``ray.init(address=...)``); without one, a Ray runtime
    already started in this process is used, else a local one with ``num_cpus`` (default: this
    machine's cores) starts, and :meth:`close` stops it (a library build that hands out its
    mixture is not closed: the runtime then serves later builds and stops when the process
    exits). ``max_retries`` is how often a task whose worker died is run again.
    """

    name = "ray"
    chunking = "stream"  # the same chunks as LocalStreaming: a streaming build's cached preparation serves it
    in_process = False  # row-local steps run in Ray workers

    def __init__(self, chunk_rows: int = CHUNK_ROWS, spill: Path | None = None, address: str | None = None,
                 num_cpus: int | None = None, max_retries: int = 3) -> None:
        self._ray = _ray()  # before the spill folder exists: a missing extra leaves nothing behind
        super().__init__(chunk_rows, spill)
        self.address = address
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self._started = False  # whether this executor started the runtime (and so stops it)
        self._task: Any = None
        self._export_task: Any = None
        self._cluster: dict[str, Any] = {}
        self._inflight: list[Any] = []  # task refs not yet gathered: cancelled if the build fails
        self._worker = False
        try:
            self._start()  # before the build's first stage, so stage timings do not include the start-up
        except BaseException:
            super().close()  # the spill folder goes with the failed start
            raise

    # -- the copy a task gets: the spill folder and chunk counts, nothing of the driver's state
    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "chunk_rows": self.chunk_rows, "chunks": dict(self.chunks), "_spec": self._spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._worker = True
        self._out = None
        self._files, self._shards, self._pieces = [], {}, 0
        self._ray, self._started, self._task, self._cluster, self._inflight = None, False, None, {}, []
        self._export_task = None

    # -- the runtime
    def _start(self) -> Any:
        """The remote task function, starting (or joining) the Ray runtime on first use."""
        if self._worker:
            raise RuntimeError("a Ray task cannot start tasks of its own build")
        if self._task is None:
            ray = self._ray
            started = time.perf_counter()
            if not ray.is_initialized():
                if self.address:
                    try:
                        ray.init(address=self.address, log_to_driver=False)
                    except (ConnectionError, RuntimeError, ValueError) as exc:
                        raise RecipeError(f"--address {self.address}: no Ray cluster to join there ({exc}); "
                                          "start one with `ray start --head`, or leave out --address for a "
                                          "local runtime") from None
                else:
                    # a private runtime for this build: its start-up notices are not the user's concern
                    ray.init(num_cpus=self.num_cpus or os.cpu_count(), include_dashboard=False,
                             log_to_driver=False, logging_level=logging.ERROR)
                self._started = True
            self._task = ray.remote(max_retries=self.max_retries)(_run)
            self._export_task = ray.remote(max_retries=self.max_retries)(_export)
            self._cluster = {"cpus": int(ray.cluster_resources().get("CPU", 0)),
                             "nodes": sum(1 for n in ray.nodes() if n.get("Alive")),
                             "started": self._started,  # a runtime of its own, not a running one joined
                             "startup_seconds": round(time.perf_counter() - started, 3)}
        return self._task

    def describe(self) -> dict[str, Any]:
        """The manifest's ``run`` section records the cluster the tasks ran on (CPUs, nodes)."""
        return {"cluster": dict(self._cluster)} if self._cluster else {}

    def _stop(self) -> None:
        if self._started and self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._started, self._task, self._export_task = False, None, None

    def _window(self) -> int:
        """Chunks read ahead of their tasks: enough to keep every CPU busy, few enough to bound memory."""
        return max(2, 2 * self._cluster.get("cpus", 1))

    def _get(self, refs: Any) -> Any:
        """Task results; a user-facing error raised in a task is raised as itself (its message,
        exit code), not as Ray's wrapper around a remote traceback."""
        try:
            out = self._ray.get(refs)
            done = set(refs) if isinstance(refs, list) else {refs}
            self._inflight = [r for r in self._inflight if r not in done]
            return out
        except self._ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, MixerError):
                raise exc.cause from None
            raise

    # -- row-local work as tasks
    def ingest(self, prio: int, src: Source, fn: Callable[[ChunkIO, pl.DataFrame], T]) -> tuple[ReadReport, list[T]]:
        """Read ``src`` on the driver (same readers, ids and rejects); ``fn`` on each chunk as a task."""
        task = self._start()
        ray = self._ray
        fn_ref = ray.put(fn)
        report, chunks = self.read(src)
        self.chunks[prio] = 0
        pending: deque[Any] = deque()
        results: list[T] = []
        window = self._window()
        for c, chunk in enumerate(chunks):
            self.put(prio, c, "raw", chunk)
            self.chunks[prio] = c + 1
            pending.append(task.remote(self, fn_ref, prio, c, True))
            self._inflight.append(pending[-1])
            if len(pending) >= window:
                results.append(self._get(pending.popleft()))
        results += self._get(list(pending))
        return report, results

    def map(self, prio: int, fn: Callable[[ChunkIO, Any], T], parts: Mapping[int, Any]) -> list[T]:
        """``fn`` on every chunk of source ``prio`` as one task each, shipped once; each task gets
        its own chunk's part; results in chunk order."""
        count = self.chunks.get(prio, 0)
        if not count:
            return []
        task = self._start()
        fn_ref = self._ray.put(fn)
        refs = [task.remote(self, fn_ref, prio, c, False, parts.get(c)) for c in range(count)]
        self._inflight += refs
        return self._get(refs)

    # -- storage: every file under a staging name, then renamed (a retried task replaces it whole)
    def put(self, prio: int, c: int, kind: str, frame: pl.DataFrame) -> None:
        path = self._path(prio, c, kind)
        tmp = _staged(path)
        frame.write_parquet(tmp, **SPILL_PARQUET)
        os.replace(tmp, path)

    def put_array(self, prio: int, c: int, kind: str, array: np.ndarray) -> None:
        path = self._path(prio, c, kind, "npy")
        tmp = _staged(path)
        with tmp.open("wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)

    def _write_piece(self, frame: pl.DataFrame, path: Path) -> None:
        tmp = _staged(path)  # a retried task never leaves half a piece
        frame.write_parquet(tmp, **SPILL_PARQUET)
        os.replace(tmp, path)

    def export(self, split: str, total: int, output: OutputSpec,
               convert: Callable[[pl.DataFrame], tuple[Part, T]]) -> list[T]:
        """One task per output shard: assemble, convert, commit; summaries in shard order."""
        self._spec = output
        count = len(writers.shard_plan(total, output.shard_rows))
        self._shards[split] = count
        if not count:
            return []
        self._start()
        fn_ref = self._ray.put(convert)
        refs = [self._export_task.remote(self, fn_ref, split, i, count) for i in range(count)]
        self._inflight += refs
        done = self._get(refs)
        self._files += [file for file, _ in done]
        return [summary for _, summaries in done for summary in summaries]

    def put_output(self, split: str, index: int, count: int, frame: pl.DataFrame, parts: Iterator[Part]) -> None:
        self._files.append(self._commit(split, index, count, parts))

    def _commit(self, split: str, index: int, count: int, parts: Iterator[Part]) -> writers.OutputFile:
        """Write the shard in a staging folder of its own, then rename it to its deterministic name."""
        staging = self.folder / ".staging" / f"{split}-{index:05d}-{uuid.uuid4().hex}"
        written = self._write_shard(parts, staging, split, index, count)
        target = self.folder / "final" / written.path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / written.path, target)
        shutil.rmtree(staging, ignore_errors=True)
        return written

    def close(self) -> None:
        if self._worker:
            return  # a task's copy never removes the build's folder
        if self._inflight and self._ray is not None and self._ray.is_initialized():
            for ref in self._inflight:  # a failed build: its other tasks must not write into a removed folder
                self._ray.cancel(ref, force=True)
            self._ray.wait(self._inflight, num_returns=len(self._inflight), timeout=30)
        self._inflight = []
        self._stop()
        super().close()
