"""The build, described once: named stages over chunks and small key tables.

    read -> dedup -> prepare -> select -> order -> gather -> export

Row-local stages (``read``: read + normalise + dedup keys/signatures; ``prepare``: drop
copies, decontaminate, transform, count tokens, split; ``gather``: the selected rows, repeats
re-augmented; ``export``: final order and output-format conversion) run chunk by chunk
through an :mod:`executor <mixer.executors>`, which alone decides where rows live between
stages. Global stages (``dedup``: exact and near copies; ``select``: budgets and selection;
``order``: final positions and shards, stored with each chunk for its ``gather`` task) run on
small key tables (ids, keys, token counts, signatures) with the same functions whatever the
executor, so every executor gives the same rows, order, files and manifest.

A ``progress`` callable gets a :class:`StageEvent` at the start and end of every stage.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixer import dedup, formats, mix, schema, template_tokens, tokens, transforms, writers
from mixer import manifest as manifest_mod
from mixer.decontaminate import EvalIndex, build_index, decontaminate
from mixer.executors import Beside, ChunkIO, Executor
from mixer.mixture import Mixture
from mixer.recipe import Recipe, Source
from mixer.cache import Cache, Entry, EntryWriter
from mixer.sources.files import InputFile
from mixer.sources.read import ReadReport, Reject
from mixer.split import split

STAGES = ("read", "dedup", "prepare", "select", "order", "gather", "export")  # plus "cache" when one is used
MEASURED = {f"n_{m}": pl.UInt32 for m in tokens.MEASURES}  # a row's size in every token measure
#: per row, for selection: ``n_tokens`` is its size under the recipe's ``token_budget``
SKINNY = pl.Schema({"id": pl.String, "n_tokens": pl.UInt32, **MEASURED, "_chunk": pl.UInt32})


@dataclass(frozen=True)
class StageEvent:
    """A stage starting (``rows`` going in) or ending (``rows`` coming out, ``seconds`` it took)."""

    stage: str
    event: str  # "start" | "end"
    rows: int
    seconds: float = 0.0
    executor: str = ""


Progress = Callable[[StageEvent], None]


def silent(_: StageEvent) -> None:
    return None


@dataclass
class _Source:
    """What the stages learn about one source: its read report, step totals and key tables."""

    src: Source
    prio: int
    keeps_clean: bool = False  # its cleaned rows are stored for re-augmenting upsampled repeats
    report: ReadReport | None = None
    steps: list[transforms.Step] = field(default_factory=list)
    flagged: int = 0
    train: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SKINNY))
    held: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SKINNY))

    def __getstate__(self) -> dict[str, Any]:
        # what a row-local task on a cluster needs is the recipe's source; the key tables stay on the driver
        return {**self.__dict__, "train": self.train.clear(), "held": self.held.clear(), "report": None}


@dataclass
class _Build:
    recipe: Recipe
    executor: Executor
    progress: Progress
    enc: Any
    base_dir: Path
    sources: list[_Source]
    prepared: dict[str, transforms.Prepared] = field(default_factory=dict)
    phases: list[dict[str, Any]] = field(default_factory=list)  # seconds and rows per stage, for the manifest
    template: Any = None  # the recipe's chat_template as an audit Renderer: counts as the trainer renders
    _started: dict[str, float] = field(default_factory=dict)

    def __getstate__(self) -> dict[str, Any]:
        # a row-local closure travels to a cluster's workers with the build; progress stays on the driver
        return {**self.__dict__, "progress": silent, "_started": {}}

    def start(self, stage: str, rows: int) -> None:
        self._started[stage] = time.perf_counter()
        self.progress(StageEvent(stage, "start", rows, executor=self.executor.name))

    def end(self, stage: str, rows: int) -> None:
        seconds = time.perf_counter() - self._started.pop(stage)
        self.phases.append({"phase": stage, "seconds": round(seconds, 3), "rows": rows})
        self.progress(StageEvent(stage, "end", rows, seconds, self.executor.name))

    def augment(self, frame: pl.DataFrame, src: Source) -> tuple[pl.DataFrame, list[transforms.Step], pl.DataFrame]:
        """The source's transforms on rows, then their token counts: the one place transforms run
        (first copies in ``prepare``, upsampled repeats in ``gather``).

        ``n_tokens`` becomes each row's size under the recipe's ``token_budget``; every measure
        (rendered, content, assistant) is returned beside, aligned with the rows."""
        out, steps = self.prepared[src.name].apply(frame)
        before = frame if src.transforms else None
        if self.template is not None:  # what the trainer will render, counted with the model's tokenizer
            measured = template_tokens.counts(out, self.template, formats.FORMATS[self.recipe.output.format], before)
        else:
            measured = tokens.counts(out, self.enc, before)
        out = out.with_columns(n_tokens=measured.get_column(f"n_{self.recipe.token_budget}"))
        return schema.check(out, "token counting"), steps, measured


def build(recipe: Recipe, executor: Executor, progress: Progress | None = None, cache: Cache | None = None) -> Mixture:
    """Run every stage of ``recipe`` on ``executor``; the mixture's rows stay where it keeps them.

    With a ``cache``, the state after ``prepare`` is looked up by the recipe's preparation key
    (:mod:`mixer.cache`): a hit skips read, dedup and prepare; a miss stores it for next time."""
    b = _Build(recipe, executor, progress or silent, tokens.encoding(recipe.tokenizer),
               recipe.path.resolve().parent if recipe.path else Path.cwd(),
               [_Source(src, prio) for prio, src in enumerate(recipe.sources)])
    if recipe.output.audit:  # the audit template loads before any data is read
        from mixer.audit import check_template

        check_template(recipe.output.audit)
    if recipe.chat_template:  # so does the counting template
        b.template = template_tokens.load(recipe.chat_template, recipe.tokenizer)
    # prepared once (pools, catalogs, banks, guard index), before any data is read; applied per chunk
    b.prepared = {src.name: transforms.prepare(src.transforms, seed=recipe.seed, source=src.name,
                                               base_dir=b.base_dir, encoding=b.enc) for src in recipe.sources}
    try:
        key = cache.key(recipe, b.enc.name, executor.chunking, getattr(executor, "chunk_rows", None)) if cache else None
        for s in b.sources:  # a repeat needs max_epochs > 1; a cache entry keeps them for any re-mix
            s.keeps_clean = bool(s.src.transforms) and (s.src.max_epochs > 1 or key is not None)
        entry = cache.open(key) if cache is not None and key is not None else None
        if entry is not None:
            removed, decontaminated = _restore(b, entry)
        else:
            keys, table_rows = _read(b)
            copies = _dedup(b, keys, table_rows)
            del keys
            removed, index = _prepare(b, copies)
            decontaminated = manifest_mod.decontamination_summary(index) if index is not None else None
            if cache is not None and key is not None:
                _store(b, cache.writer(key), removed, decontaminated)
        chosen, val_chosen, allocations = _select(b, removed)
        # the accounting needs only sums of the key tables of every available row: free them
        # before the order sorts every selected row (at 10M rows they are about 0.5 GB)
        available = {s.src.name: manifest_mod.Available.of(s.train, s.held) for s in b.sources}
        for s in b.sources:
            s.train, s.held = s.train.clear(), s.held.clear()
        heights, planned = _order(b, chosen, val_chosen)
        del chosen, val_chosen  # the stored plans hold what the rest needs of every selected row
        # from here on the accounting needs only sizes, and the export only how many rows each split has
        sizes, augmented, behaviours = _gather(b, heights, planned)
        entries = manifest_mod.source_entries(
            recipe, {s.src.name: s.report for s in b.sources},  # type: ignore[misc]
            {s.src.name: s.steps for s in b.sources}, allocations, sizes["train"], available,
            sizes["validation"], removed, {s.src.name: s.flagged for s in b.sources}, augmented,
            {name: p.info for name, p in b.prepared.items()}, behaviours)
        totals = {name: {"rows": sum(f.rows for f in part.values()), "tokens": sum(f.tokens for f in part.values())}
                  for name, part in sizes.items()}
        manifest = manifest_mod.build_manifest(recipe, b.enc.name, entries, totals)
        if decontaminated is not None:
            manifest["decontamination"] = decontaminated
        output = _export(b, heights, manifest)
        # the one part of the manifest that differs between runs of the same recipe
        manifest["run"] = {"executor": executor.name, **executor.describe(),
                           "seconds": round(sum(p["seconds"] for p in b.phases), 3),
                           "phases": b.phases,
                           **({"cache": {"key": key, "hit": entry is not None, "dir": str(cache.root)}}
                              if cache is not None and key is not None else {})}
        manifest_mod.check(manifest)
    except BaseException:
        executor.close()
        raise
    rejects = [r for s in b.sources for r in s.report.rejects]  # type: ignore[union-attr]
    return Mixture(recipe=recipe, manifest=manifest, output=output, rejects=rejects, removed=removed)


def _store(b: _Build, writer: EntryWriter, removed: pl.DataFrame, decontaminated: dict[str, Any] | None) -> None:
    """Keep the state after ``prepare`` (rows ready per chunk, key tables, reports) for re-mixes."""
    b.start("cache", 0)
    try:
        state: dict[str, Any] = {"recipe": b.recipe.name, "decontamination": decontaminated, "sources": []}
        for s in b.sources:
            chunks = b.executor.chunks.get(s.prio, 0)
            for c in range(chunks):
                for kind in ("ready", "clean") if s.src.transforms else ("ready",):
                    stored = b.executor.stored_file(s.prio, c, kind)
                    if stored is not None:
                        writer.file(f"{s.prio}-{c}-{kind}", stored)
                    else:
                        writer.frame(f"{s.prio}-{c}-{kind}", b.executor.get(s.prio, c, kind))
            writer.frame(f"{s.prio}-train", s.train)
            writer.frame(f"{s.prio}-held", s.held)
            assert s.report is not None
            state["sources"].append({"name": s.src.name, "chunks": chunks, "flagged": s.flagged,
                                     "steps": [dataclasses.asdict(st) for st in s.steps],
                                     "report": _report_state(s.report)})
        writer.frame("removed", removed)
        writer.commit(state)
    except BaseException:
        writer.abandon()
        raise
    b.end("cache", sum(s.train.height + s.held.height for s in b.sources))


def _restore(b: _Build, entry: Entry) -> tuple[pl.DataFrame, dict[str, Any] | None]:
    """The state after ``prepare``, from a cache entry, into the executor and the build."""
    b.start("cache", 0)
    for s, state in zip(b.sources, entry.state["sources"], strict=True):
        b.executor.chunks[s.prio] = state["chunks"]
        for c in range(state["chunks"]):
            for kind in ("ready", "clean") if s.src.transforms else ("ready",):
                b.executor.put_file(s.prio, c, kind, entry.path(f"{s.prio}-{c}-{kind}"))
        s.train, s.held = entry.frame(f"{s.prio}-train"), entry.frame(f"{s.prio}-held")
        s.flagged = state["flagged"]
        s.steps = [transforms.Step(**st) for st in state["steps"]]
        s.report = _report_from(state["report"])
    b.end("cache", sum(s.train.height + s.held.height for s in b.sources))
    return entry.frame("removed"), entry.state["decontamination"]


def _report_state(report: ReadReport) -> dict[str, Any]:
    return {"source": report.source, "format": report.format, "rows_read": report.rows_read,
            "inputs": [dataclasses.asdict(f) for f in report.inputs], "rejected": dict(report.rejected),
            "repairs": dict(report.repairs), "rejects": [dataclasses.asdict(r) for r in report.rejects],
            "formats": report.formats, "notes": report.notes, "read_paths": dict(report.read_paths)}


def _report_from(state: dict[str, Any]) -> ReadReport:
    return ReadReport(source=state["source"], format=state["format"], rows_read=state["rows_read"],
                      inputs=[InputFile(**f) for f in state["inputs"]], rejected=Counter(state["rejected"]),
                      repairs=Counter(state["repairs"]), rejects=[Reject(**r) for r in state["rejects"]],
                      formats=state["formats"], notes=state["notes"], read_paths=Counter(state["read_paths"]))


def _read(b: _Build) -> tuple[pl.DataFrame, int]:
    """Row-local: read and normalise every source chunk by chunk; keep each row's dedup keys
    (and near-dedup signatures). Returns the key table and the rows read into it."""
    spec = b.recipe.dedup
    b.start("read", 0)
    parts: list[pl.DataFrame] = []
    rows = 0
    for s in b.sources:
        def keys(io: ChunkIO, chunk: pl.DataFrame) -> tuple[int, pl.DataFrame | None]:
            if not dedup.active(spec):
                return chunk.height, None
            key_rows, table = dedup.chunk_keys(chunk, spec, io.prio, io.chunk)
            if table is not None:
                io.put_array("sig", table)
            return chunk.height, key_rows

        s.report, done = b.executor.ingest(s.prio, s.src, keys)
        rows += sum(height for height, _ in done)
        parts += [key_rows for _, key_rows in done if key_rows is not None]
    b.end("read", rows)
    empty = pl.DataFrame(schema=dedup.NEAR_KEYS if spec.near is not None else dedup.KEYS)
    return (pl.concat(parts) if parts else empty), rows


def _dedup(b: _Build, keys: pl.DataFrame, rows: int) -> pl.DataFrame:
    """Global: exact and near copies, marked on the key table (and the signature table)."""
    b.start("dedup", rows)
    near = b.recipe.dedup.near
    width = near.permutations if near is not None else 0
    copies = dedup.plan(keys, b.recipe.dedup, lambda part: b.executor.signature_table(part, width),
                        [s.src.name for s in b.sources])
    b.end("dedup", rows - copies.height)
    return copies


def _prepare(b: _Build, copies: pl.DataFrame) -> tuple[pl.DataFrame, EvalIndex | None]:
    """Row-local: drop the copies, decontaminate, transform, count tokens and split each chunk.

    Returns every removed row's record (copies, then decontaminated rows in source and chunk
    order) and the evaluation index decontamination used.
    """
    recipe = b.recipe
    b.start("prepare", sum(s.report.rows_available for s in b.sources) - copies.height)  # type: ignore[union-attr]
    if b.template is None and b.executor.in_process:
        tokens.warm(b.enc, max((s.report.rows_available for s in b.sources), default=0))  # type: ignore[union-attr]
    index = build_index(recipe.decontaminate) if recipe.decontaminate is not None else None
    origins: list[pl.DataFrame] = []
    parts: list[pl.DataFrame] = []
    none = copies.clear()
    for s in b.sources:
        def prepare(io: ChunkIO, mine: pl.DataFrame | None, s: _Source = s) -> _Prepared:
            out = _Prepared()
            chunk, out.origins = dedup.drop(io.get("raw"), none if mine is None else mine, s.prio, io.chunk)
            if index is not None:
                assert recipe.decontaminate is not None
                cleaned, out.removed, flagged = decontaminate({s.src.name: chunk}, recipe.decontaminate, index)
                chunk, out.flagged = cleaned[s.src.name], flagged[s.src.name]
            with Beside() as writes:  # the cleaned rows are stored while they are augmented
                if s.keeps_clean:  # upsampled repeats are re-augmented from the cleaned rows
                    writes.start(io.put, "clean", chunk)
                frame, out.steps, measured = b.augment(chunk, s.src)
            io.put("ready", frame)
            keys = pl.concat([frame.select("id", "n_tokens"), measured], how="horizontal")
            out.train, out.held = split(keys.with_columns(_chunk=pl.lit(io.chunk, pl.UInt32)), recipe.validation,
                                        recipe.seed)
            return out

        done = b.executor.map(s.prio, prepare, by_chunk(copies.filter(pl.col("_prio") == s.prio)))
        b.executor.discard(s.prio, "raw")
        s.train = _concat([d.train for d in done], SKINNY)
        s.held = _concat([d.held for d in done], SKINNY)
        for d in done:
            origins.append(d.origins)
            s.steps = _add_steps(s.steps, d.steps)
            s.flagged += d.flagged
            if d.removed is not None:
                parts.append(d.removed)
    b.end("prepare", sum(s.train.height + s.held.height for s in b.sources))
    return pl.concat([dedup.records(copies, origins), *parts]), index


@dataclass
class _Prepared:
    """What ``prepare`` learns from one chunk: its key tables, step counts and removed rows."""

    train: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SKINNY))
    held: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SKINNY))
    steps: list[transforms.Step] = field(default_factory=list)
    flagged: int = 0
    removed: pl.DataFrame | None = None  # decontaminated rows
    origins: pl.DataFrame | None = None  # where the chunk's copies came from


def _add_steps(total: list[transforms.Step], chunk: list[transforms.Step]) -> list[transforms.Step]:
    """What each transform did to a source: the sum over its chunks."""
    if not total:
        return chunk
    return [transforms.Step(a.position, a.type, a.rows_in + b.rows_in, a.rows_out + b.rows_out,
                            a.augmented + b.augmented) for a, b in zip(total, chunk)]


def _select(b: _Build, removed: pl.DataFrame) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame],
                                                       list[mix.Allocation]]:
    """Global: per-source budgets and the selected ids (train, then validation), on key tables.

    Under ``token_budget = "rendered"``, repeats of augmented sources are sized by their own
    re-augmented token counts, so a token target holds for the rows written (content and
    assistant tokens do not change when a repeat draws fresh tools or prompts); a shortfall says
    what cleaning removed."""
    b.start("select", sum(s.train.height + s.held.height for s in b.sources))
    resize = {s.src.name: _resizer(b, s) for s in b.sources
              if s.keeps_clean and b.recipe.token_budget == "rendered"}
    chosen, allocations = mix.allocate(b.recipe, {s.src.name: s.train for s in b.sources}, resize, _losses(b, removed))
    val_chosen = mix.select_validation(chosen, {s.src.name: s.held for s in b.sources}, b.recipe)
    b.end("select", sum(f.height for f in chosen.values()) + sum(f.height for f in val_chosen.values()))
    return chosen, val_chosen, allocations


def _losses(b: _Build, removed: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Per source: rows read, and how many each step before selection removed (for shortfall messages)."""
    out = {}
    for s in b.sources:
        name, report = s.src.name, s.report
        assert report is not None
        buckets = removed.filter(pl.col("source") == name).get_column("bucket")
        out[name] = {"read": report.rows_read, "unreadable": report.rows_rejected,
                     "duplicates": int((buckets == "deduplicated").sum()),
                     "decontaminated": int((buckets == "decontaminated").sum()),
                     "filtered by transforms": sum(st.rows_in - st.rows_out for st in s.steps)}
    return out


def _resizer(b: _Build, s: _Source) -> mix.Resize:
    """Token counts of repeat ``r`` of ranked key rows: re-augmented from the cleaned rows, chunk
    by chunk, exactly as ``gather`` will write them."""
    def resize(rows: pl.DataFrame, r: int) -> np.ndarray:
        def one(io: ChunkIO, mine: pl.DataFrame | None) -> pl.DataFrame:
            if mine is None:
                return pl.DataFrame(schema={"id": pl.String, "_r": pl.UInt32})
            fresh = mine.select("id").join(io.get("clean"), on="id", how="inner", maintain_order="left")
            if not fresh.height:
                return pl.DataFrame(schema={"id": pl.String, "_r": pl.UInt32})
            fresh, _, _ = b.augment(fresh.with_columns(pl.col("id") + f"#{r}").select(schema.COLUMNS), s.src)
            return fresh.select(pl.col("id").str.replace(r"#\d+$", ""), _r=pl.col("n_tokens"))

        sized = pl.concat(b.executor.map(s.prio, one, by_chunk(rows.select("id", "_chunk"))))
        return (rows.select("id", "n_tokens").join(sized, on="id", how="left", maintain_order="left")
                .select(pl.col("_r").fill_null(pl.col("n_tokens"))).to_series().to_numpy())

    return resize


def _order(b: _Build, chosen: dict[str, pl.DataFrame],
           val_chosen: dict[str, pl.DataFrame]) -> tuple[dict[str, int], Planned]:
    """Global: every selected row's final position and output shard, per split, stored with the
    executor chunk by chunk (:func:`store_plan`); returns each split's row count and which
    chunks have plan rows of which split."""
    rows = sum(f.height for f in chosen.values()) + sum(f.height for f in val_chosen.values())
    b.start("order", rows)
    heights: dict[str, int] = {}
    planned: Planned = {}
    for name, frames in (("train", chosen), ("validation", val_chosen)):
        plan = _plan(frames, b)
        heights[name] = plan.height
        store_plan(b.executor, name, plan, planned)
        del plan
    b.end("order", rows)
    return heights, planned


def _plan(chosen: dict[str, pl.DataFrame], b: _Build) -> pl.DataFrame:
    prio = {s.src.name: s.prio for s in b.sources}
    combined = pl.concat([f.with_columns(_prio=pl.lit(prio[name], pl.UInt32)) for name, f in chosen.items()])
    order = mix.order(combined.get_column("id"), b.recipe.seed)
    position = np.empty(len(order), dtype=np.uint32)  # positions fit: at most 2**32 rows a split
    position[order] = np.arange(len(order), dtype=np.uint32)
    del order
    offsets = np.array([o for o, _ in writers.shard_plan(combined.height, b.recipe.output.shard_rows)],
                       dtype=np.int64)
    shard = np.searchsorted(offsets, position, side="right") - 1 if len(offsets) else position
    # a selected row's sizes travel with it: gather reports them without the source's key tables
    return combined.select("id", "_prio", "_chunk", *MEASURED, _pos=pl.Series(position, dtype=pl.UInt32),
                           _shard=pl.Series(shard, dtype=pl.UInt32))


def _gather(b: _Build, heights: dict[str, int], planned: Planned
            ) -> tuple[dict[str, dict[str, manifest_mod.Selected]], dict[str, dict[str, int]],
                       dict[str, dict[str, dict[str, int]]]]:
    """Row-local: each chunk's selected rows (upsampled repeats re-augmented), handed to the
    executor with their position; returns their sizes per split and source, and how many
    selected train rows each transform step augmented."""
    b.start("gather", sum(heights.values()))
    sizes: dict[str, dict[str, manifest_mod.Selected]] = {name: {} for name in heights}
    augmented: dict[str, dict[str, int]] = {}
    behaviours: dict[str, dict[str, dict[str, int]]] = {}
    for s in b.sources:
        def gather(io: ChunkIO, splits: list[str] | None, s: _Source = s) -> _Gathered:
            return _gather_chunk(b, s, io, splits or [])

        done = b.executor.map(s.prio, gather, planned.get(s.prio, {}))
        for kind in ("ready", "clean", *(PLAN + name for name in heights)):  # gathered: free them before the export
            b.executor.discard(s.prio, kind)
        name = s.src.name
        augmented[name] = {st.label: 0 for st in s.steps}
        behaviours[name] = {}
        for split_name in heights:
            sizes[split_name][name] = sum((d.sizes[split_name] for d in done if split_name in d.sizes),
                                          manifest_mod.Selected())
        for d in done:
            for label, n in d.augmented.items():
                augmented[name][label] += n
            for label, counts in d.behaviours.items():
                total = behaviours[name].setdefault(label, {})
                for kind, n in counts.items():
                    total[kind] = total.get(kind, 0) + n
    b.end("gather", sum(f.rows for part in sizes.values() for f in part.values()))
    return sizes, augmented, {name: {label: dict(sorted(c.items())) for label, c in per.items()}
                              for name, per in behaviours.items()}


@dataclass
class _Gathered:
    """What ``gather`` keeps of one chunk's selected rows: their sizes summed per split and,
    counted from the train rows' meta here (not kept: ~150 bytes a row), what each transform
    step did to them."""

    sizes: dict[str, manifest_mod.Selected] = field(default_factory=dict)
    augmented: dict[str, int] = field(default_factory=dict)
    behaviours: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, s: _Source, split_name: str, rows: pl.DataFrame, group: pl.DataFrame) -> None:
        """Count a group's selected ``rows`` (``group``: their plan rows)."""
        # a repeat's content and assistant tokens are its original's (the plan carries them); its
        # rendered count is its own
        sizes = manifest_mod.Selected.of(
            rows.select("id", "n_tokens", "_rendered").join(group.select("id", *MEASURED), on="id", how="left")
            .select("n_tokens", pl.coalesce("_rendered", "n_rendered").alias("n_rendered"), "n_content",
                    "n_assistant"))
        self.sizes[split_name] = self.sizes.get(split_name, manifest_mod.Selected()) + sizes
        if split_name == "train":
            for label, n in manifest_mod.augmented_counts(rows, s.steps).items():
                self.augmented[label] = self.augmented.get(label, 0) + n
            for label, counts in manifest_mod.behaviour_counts(rows, s.steps).items():
                total = self.behaviours.setdefault(label, {})
                for kind, n in counts.items():
                    total[kind] = total.get(kind, 0) + n


PLAN = "plan-"  # the stored kind of a chunk's plan rows of a split: plan-train, plan-validation
Planned = dict[int, dict[int, list[str]]]  # source priority -> chunk -> the splits it has plan rows of


def store_plan(executor: Executor, split: str, plan: pl.DataFrame, planned: Planned) -> None:
    """A split's plan rows stored with the executor chunk by chunk (``plan-<split>``, in plan
    order), each chunk's splits noted in ``planned``. Gather's tasks read their own chunk's rows,
    so no one holds the plans through the gather (at 10M rows 0.5 GB, most of it ids)."""
    if not plan.height:
        return
    key = plan.get_column("_prio").to_numpy().astype(np.uint64)  # (priority, chunk) in one word, in place
    key <<= np.uint64(32)
    key |= plan.get_column("_chunk").to_numpy()
    order = np.argsort(key, kind="stable")  # each chunk's rows together, in plan order
    ordered = key[order]
    del key
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    columns = ["id", "_pos", "_shard", *MEASURED]
    for start, rows in zip(starts.tolist(), np.split(order, starts[1:])):
        p, c = divmod(int(ordered[start]), 1 << 32)
        executor.put(p, c, PLAN + split, plan[rows].select(columns))
        planned.setdefault(p, {}).setdefault(c, []).append(split)


def _gather_chunk(b: _Build, s: _Source, io: ChunkIO, splits: list[str]) -> _Gathered:
    """One chunk's selected rows of each split, handed on in groups of whole output shards
    (``Executor.gather_rows`` rows or so): beside the chunk's rows only a group's copies are held."""
    out = _Gathered()
    stored: dict[str, pl.DataFrame] = {}

    def chunk(kind: str) -> pl.DataFrame:  # the chunk's prepared ("ready") or cleaned rows, read once
        if kind not in stored:
            stored[kind] = io.get(kind)
        return stored[kind]

    with Beside() as writes:  # a group's rows are written while the next is joined
        for split_name in splits:
            mine = io.get(PLAN + split_name)  # the plan rows of this chunk (store_plan)
            for group in _shard_groups(mine.with_columns(_base=pl.col("id").str.replace(r"#\d+$", "")),
                                       b.executor.gather_rows):
                rows = _selected_rows(b, s, group, chunk)
                assert rows.height == group.height, f"{s.src.name} chunk {io.chunk}: selected rows went missing"
                writes.start(io.put_rows, split_name, rows.drop("_rendered"))
                out.add(s, split_name, rows, group)
    return out


def _selected_rows(b: _Build, s: _Source, group: pl.DataFrame, chunk: Callable[[str], pl.DataFrame]) -> pl.DataFrame:
    """The rows of ``group`` (plan rows: ``id``, ``_base``, ``_pos``, ``_shard``, measures) from the
    chunk's prepared rows, repeats under their own ids; ``_rendered``: a fresh repeat's rendered size."""
    ready = chunk("ready")
    is_repeat = pl.col("id") != pl.col("_base")
    first = group.filter(~is_repeat).join(ready, on="id", how="inner").drop("_base", *MEASURED)
    first = first.with_columns(_rendered=pl.lit(None, pl.UInt32))
    repeats = group.filter(is_repeat).drop(*MEASURED)
    if not repeats.height:
        return first
    if s.src.transforms:
        # a repeat starts again from the untransformed row under its own id: fresh draws
        assert s.keeps_clean, f"{s.src.name}: a repeat of a source whose cleaned rows were not kept"
        fresh = (repeats.select("id", "_base").join(chunk("clean").rename({"id": "_base"}), on="_base",
                                                    how="inner", maintain_order="left").drop("_base"))
        fresh, _, measured = b.augment(fresh.select(schema.COLUMNS), s.src)
        fresh = fresh.with_columns(_rendered=measured.get_column("n_rendered"))
        again = repeats.select("id", "_pos", "_shard").join(fresh, on="id", how="inner")
    else:
        again = repeats.join(ready.rename({"id": "_base"}), on="_base", how="inner").drop("_base")
        again = again.with_columns(_rendered=pl.lit(None, pl.UInt32))
    return pl.concat([first, again.select(first.columns)])


def _shard_groups(rows: pl.DataFrame, limit: int | None) -> list[pl.DataFrame]:
    """``rows`` in groups of whole output shards (``_shard``) of about ``limit`` rows; one group
    with None. A shard's rows of a chunk stay together: they are one piece of that shard."""
    if limit is None or rows.height <= limit:
        return [rows]
    counts = rows.group_by("_shard").len().sort("_shard")
    before = counts.get_column("len").cum_sum() - counts.get_column("len")
    groups = counts.select("_shard", (before // limit).alias("_group"))
    return rows.join(groups, on="_shard").partition_by("_group", include_key=False)


def _export(b: _Build, heights: dict[str, int], manifest: dict[str, Any]) -> Any:
    """Row-local per output shard: the rows in final order (placed by ``gather``), converted to
    the output format. ``heights``: how many rows each split has."""
    recipe = b.recipe
    convert = _converter(recipe, b.base_dir)
    names = ["train", "validation"] if recipe.validation > 0 else ["train"]
    b.start("export", sum(heights[name] for name in names))
    rows: dict[str, int] = {}
    rejects: dict[str, list[dict[str, Any]]] = {}
    renamed: dict[str, list[dict[str, Any]]] = {}
    unrendered: dict[str, list[dict[str, Any]]] = {}
    written: list[pl.DataFrame] = []  # which rows the trainer-format files hold, in their order
    for name in names:
        rows[name], rejects[name], renamed[name], unrendered[name] = 0, [], [], []
        shard = _Shard(recipe, b.base_dir, name, convert)
        for done in b.executor.export(name, heights[name], recipe.output, shard):
            rows[name] += done.rows
            rejects[name] += done.rejects
            renamed[name] += done.renamed
            unrendered[name] += done.unrendered
            if done.provenance is not None:
                written.append(done.provenance)
    if convert is not None:
        manifest["export"] = manifest_mod.export_summary(rows, rejects, recipe, manifest["sources"], renamed,
                                                         unrendered)
    output = b.executor.output(convert)
    output.rejects = rejects if convert is not None else {}
    output.provenance = pl.concat(written) if written else None
    b.end("export", sum(rows.values()))
    return output


def _converter(recipe: Recipe, base_dir: Path) -> Callable[[pl.DataFrame], formats.Exported] | None:
    """The output format's conversion of canonical rows (None: mixer's own rows are written)."""
    fmt = formats.FORMATS[recipe.output.format]
    if not fmt.converts:
        return None
    options = formats.options(fmt, recipe.output, base_dir)

    def convert(frame: pl.DataFrame) -> formats.Exported:
        return formats.export(frame, fmt, **options)

    return convert


@dataclass
class ShardSummary:
    """What one output shard's conversion wrote: rows, rejects, renamed tools, tools the trainer
    may not render, provenance."""

    rows: int
    rejects: list[dict[str, Any]] = field(default_factory=list)
    renamed: list[dict[str, Any]] = field(default_factory=list)
    unrendered: list[dict[str, Any]] = field(default_factory=list)
    provenance: pl.DataFrame | None = None


@dataclass
class _Shard:
    """Row-local: one output shard of ``split`` (canonical rows in final order) converted to the
    output format. A cluster runs it in tasks: it pickles without its converter, whose options
    (a compiled chat template) are loaded again where it runs."""

    recipe: Recipe
    base_dir: Path
    split: str
    convert: Callable[[pl.DataFrame], formats.Exported] | None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "convert": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.convert = _converter(self.recipe, self.base_dir)

    def __call__(self, frame: pl.DataFrame) -> tuple[pl.DataFrame | list[dict[str, Any]], ShardSummary]:
        frame = schema.check(frame, "export")
        if self.convert is None:
            return frame, ShardSummary(frame.height)
        exported = self.convert(frame)
        return exported.part, ShardSummary(len(exported), exported.rejects, exported.renamed, exported.unrendered,
                                           provenance(self.split, frame, exported.rejects))


def provenance(split: str, frame: pl.DataFrame, rejects: list[dict[str, Any]]) -> pl.DataFrame:
    """``split, source, id`` of the rows of ``frame`` a trainer format wrote (the rejected left out),
    in file order: trainer formats drop mixer's columns, so audit and diff read them from here."""
    gone = pl.Series([r["id"] for r in rejects], dtype=pl.String)
    return frame.filter(~pl.col("id").is_in(gone.implode())).select(pl.lit(split).alias("split"), "source", "id")



def by_chunk(keys: pl.DataFrame) -> dict[int, pl.DataFrame]:
    """A key table's rows per chunk (``_chunk``): each row-local call gets its own part only, so a
    cluster ships every key row once, not the whole table with every chunk's task."""
    return {c: part for (c,), part in keys.partition_by("_chunk", as_dict=True).items()}


def _concat(parts: list[pl.DataFrame], columns: Any) -> pl.DataFrame:
    return pl.concat(parts) if parts else pl.DataFrame(schema=columns)
