"""What a report shows, read from an output folder only: manifest.json and the files it lists.

Nothing here imports the build: the report must work on any folder a build or conversion
wrote (also an older one), so every manifest field beyond the basic accounting is optional
and feature-detected. Data files are scanned lazily and only the columns a chart needs are
read, so a 1M-row mixture costs a few columns in memory, not the rows.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixer import rng
from mixer.errors import OutputError

CANONICAL_COLUMNS = {"id", "source", "kind", "messages", "tools", "meta", "n_tokens"}
BUCKETS = ("rows_rejected", "rows_deduplicated", "rows_decontaminated", "rows_filtered")


def load_manifest(out_dir: Path) -> dict[str, Any]:
    """The folder's manifest.json, or an error saying what the folder is missing."""
    path = out_dir / "manifest.json"
    if not out_dir.is_dir():
        raise OutputError(f"{out_dir}: no such folder; give the output folder of a mixer build")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{out_dir} has no manifest.json: it is not the output of a mixer build "
                          "(give the folder that `mixer build` wrote)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise OutputError(f"{path}: cannot read it as JSON ({exc}); rebuild the output") from None
    if not isinstance(manifest, dict):
        raise OutputError(f"{path}: expected a JSON object; rebuild the output")
    return manifest


def output_format(manifest: dict[str, Any]) -> str:
    return (manifest.get("export") or {}).get("format") or "canonical"


@dataclass
class Output:
    """One mixture's folder: its manifest and lazy scans of its data files, per split."""

    out_dir: Path
    manifest: dict[str, Any]
    splits: dict[str, pl.LazyFrame] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)  # the data files behind each split, in order
    schema: dict[str, pl.DataType] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # data files that could not be read, and why

    @property
    def format(self) -> str:
        return output_format(self.manifest)

    @property
    def canonical(self) -> bool:
        return CANONICAL_COLUMNS <= set(self.schema)

    def has(self, column: str) -> bool:
        return column in self.schema


def open_output(out_dir: Path, manifest: dict[str, Any] | None = None) -> Output:
    """Scan the data files the manifest lists (parquet or JSON lines), split by split."""
    manifest = manifest if manifest is not None else load_manifest(out_dir)
    result = Output(out_dir, manifest)
    by_split: dict[str, list[Path]] = {}
    for entry in manifest.get("outputs") or []:
        if isinstance(entry, dict) and entry.get("path") and entry.get("rows", 1):
            by_split.setdefault(str(entry.get("split", "train")), []).append(out_dir / entry["path"])
    for split, files in by_split.items():
        missing = [f for f in files if not f.is_file()]
        if missing:
            result.problems.append(f"{missing[0]} is listed in manifest.json but missing")
            continue
        try:
            if all(f.suffix == ".parquet" for f in files):
                # lazily, shard by shard (a 10M-row output must not be read into memory whole); shards of
                # trainer formats may type an all-null Json column differently: relaxed to one type
                scans = [pl.scan_parquet(f) for f in files]
                lf = scans[0] if len(scans) == 1 else pl.concat(scans, how="vertical_relaxed")
            else:
                lf = pl.scan_ndjson(files, schema=jsonl_schema(files[0]))
            schema = dict(lf.collect_schema())
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a report never fails a build over a file it cannot chart (Polars panics are BaseException)
            result.problems.append(f"{split}: cannot read {files[0].name} ({type(exc).__name__}: {exc})")
            continue
        result.splits[split] = lf
        result.files[split] = files
        result.schema = result.schema or schema
    return result


_TURN_FIELDS = ("role", "content", "tool_calls", "tool_call_id", "name", "from", "value")


def _json_type(values: list[Any]) -> pl.DataType:
    """A light column type for JSON values: scalars as themselves, lists of turns as lists of
    structs of strings, anything else nested (tool specs) as JSON text (never a struct per tool
    schema)."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in present) and present:
        return pl.Boolean
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present) and present:
        return pl.Int64
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present) and present:
        return pl.Float64
    if present and all(isinstance(v, list) for v in present):
        items = [i for v in present for i in v if i is not None]
        if items and all(isinstance(i, dict) and ("role" in i or "from" in i) for i in items):  # turns
            keys = dict.fromkeys(k for i in items for k in i)
            keys.update(dict.fromkeys(k for k in _TURN_FIELDS if k in ("role", "content") or k in keys))
            return pl.List(pl.Struct({k: pl.String for k in keys}))
        return pl.List(pl.String)
    return pl.String


def jsonl_schema(path: Path, sample_lines: int = 200) -> dict[str, pl.DataType]:
    """The columns of a JSON-lines data file from its first lines, typed so that Polars never
    infers one struct field per tool schema (inferring over varied tool specs took ~50 s for a
    few hundred rows): nested values the report only shows are read as JSON text."""
    records: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                records.append(json.loads(line))
            if len(records) >= sample_lines:
                break
    keys = dict.fromkeys(k for r in records for k in r)
    schema = {k: _json_type([r.get(k) for r in records]) for k in keys}
    if "n_tokens" in schema:
        schema["n_tokens"] = pl.UInt32
    return schema


# -- row accounting ---------------------------------------------------------------------------

def export_entry(manifest: dict[str, Any], source: str) -> dict[str, Any]:
    return ((manifest.get("export") or {}).get("sources") or {}).get(source) or {}


def export_rejects(entry: dict[str, Any]) -> dict[str, dict[str, int]]:
    """A source's export rejects as ``{split: {reason: rows}}`` (also read from the flat
    ``{reason: rows}`` of train-only manifests)."""
    rejected = entry.get("rejected") or {}
    if all(isinstance(v, dict) for v in rejected.values()):
        return {split: {r: int(n) for r, n in reasons.items()} for split, reasons in rejected.items()}
    return {"train": {r: int(n) for r, n in rejected.items() if not isinstance(n, dict)}}


def row_flow(manifest: dict[str, Any], source: str) -> dict[str, int]:
    """Every row of a source, from read to written, in buckets that add up.

    The rows read split into: removed before the mix (rejected, deduplicated, decontaminated,
    filtered), held out for validation (written or not), and the train side (selected at least
    once, or never). Selection takes whole repeats then a prefix of one ranking, so the distinct
    train rows selected are ``min(rows_selected, train)`` and the rest of the selection is
    repeats. Export rejects come out of the selected rows (with their repeats).
    """
    e = manifest["sources"][source]
    split = e.get("split") or {"train": e.get("rows_available", 0), "validation": 0}
    selected = int(e.get("rows_selected", 0))
    distinct = min(selected, int(split["train"]))
    val_written = int(e.get("validation_rows_selected", 0))
    flow = {b: int(e.get(b, 0)) for b in BUCKETS}
    flow.update({
        "rows_read": int(e.get("rows_read", 0)),
        "validation_written": val_written,
        "validation_export_rejected": 0,
        "validation_not_written": int(split["validation"]) - val_written,
        "train_not_selected": int(split["train"]) - distinct,
        "train_selected_distinct": distinct,
        "repeats_added": selected - distinct,
        "rows_selected": selected,
    })
    ex = export_entry(manifest, source)
    if ex:
        written, rejects = ex.get("rows_written") or {}, export_rejects(ex)
        flow["export_rejected"] = sum(rejects.get("train", {}).values())
        flow["written_train"] = int(written.get("train", 0))
        # the held-out rows a trainer format wrote, and those it could not: they add up to the selected
        flow["validation_written"] = int(written.get("validation", 0))
        flow["validation_export_rejected"] = sum(rejects.get("validation", {}).values())
    return flow


# -- shares ----------------------------------------------------------------------------------

def shares(manifest: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per source: target share, realised share in the recipe's unit, share of train tokens and
    of train rows as selected, and the realised share after export rejects when known."""
    sources = manifest.get("sources") or {}
    tokens = sum(int(e.get("tokens_selected", 0)) for e in sources.values()) or 1
    rows = sum(int(e.get("rows_selected", 0)) for e in sources.values()) or 1
    written_rows = {n: (export_entry(manifest, n).get("rows_written") or {}).get("train") for n in sources}
    total_written = sum(v for v in written_rows.values() if v is not None)
    result = {}
    for name, e in sources.items():
        ex = export_entry(manifest, name)
        result[name] = {
            "target": e.get("target_share"),
            "realized": e.get("realized_share"),
            "tokens": int(e.get("tokens_selected", 0)) / tokens,
            "rows": int(e.get("rows_selected", 0)) / rows,
            "written": ex.get("realized_share_written"),
            "rows_written": (written_rows[name] / total_written
                             if written_rows[name] is not None and total_written else None),
        }
    return result


# -- data-derived views ------------------------------------------------------------------------

BATCH_ROWS = 200_000  # rows a report query over every row holds at once


def token_lengths(out: Output, split: str = "train") -> dict[str, np.ndarray]:
    """Per source, the ``n_tokens`` of every selected row (canonical output only)."""
    lf = out.splits.get(split)
    if lf is None or not (out.has("n_tokens") and out.has("source")):
        return {}
    # streaming: a query over every row of a large output reads its shards morsel by morsel
    frame = lf.select("source", "n_tokens").collect(engine="streaming")
    return _in_manifest_order({name: part.get_column("n_tokens").to_numpy() for (name,), part in
                               frame.partition_by("source", as_dict=True, maintain_order=True).items()}, out.manifest)


def tool_counts(out: Output, split: str = "train") -> dict[str, dict[int, int]]:
    """Per source (or ``"all rows"`` when the format does not keep the source), how many rows
    carry 0, 1, 2, ... tool specs."""
    lf = out.splits.get(split)
    if lf is None or not out.has("tools") or not isinstance(out.schema["tools"], pl.List):
        return {}
    by = pl.col("source") if out.has("source") else pl.lit("all rows").alias("source")
    counts = (lf.select(by, pl.col("tools").list.len().fill_null(0).alias("n"))
              .group_by("source", "n").len().sort("source", "n").collect(engine="streaming"))
    result: dict[str, dict[int, int]] = {}
    for name, n, rows in counts.iter_rows():
        result.setdefault(name, {})[int(n)] = int(rows)
    return _in_manifest_order(result, out.manifest)


def _transform_keys(manifest: dict[str, Any]) -> dict[str, list[tuple[int, str]]]:
    return {name: [(int(t["position"]), str(t["type"])) for t in e.get("transforms") or []
                   if isinstance(t, dict) and "position" in t and "type" in t]
            for name, e in (manifest.get("sources") or {}).items()}


def tool_domain(ident: pl.Expr) -> pl.Expr:
    """``builtin:calendar.create_event`` -> ``calendar``; ``generated:12`` -> ``generated``;
    an entry of a user's catalog file (``path/tools.jsonl:3``) -> that file's name."""
    kind = ident.str.extract(r"^([^:]*)", 1)
    return (pl.when(kind == "builtin").then(ident.str.extract(r"^builtin:([^.]+)", 1))
            .otherwise(kind.str.split("/").list.last()))


def prompt_styles() -> dict[str, str]:
    """Built-in system-prompt template id -> style (empty when the pool is unavailable)."""
    try:
        from mixer.pools import builtin_records

        return {f"builtin:{r['id']}": str(r.get("style", "builtin")) for r in builtin_records("system_prompts")}
    except Exception:  # an older or newer pool layout: show ids' prefixes instead
        return {}


def prompt_style(ident: pl.Expr, styles: dict[str, str]) -> pl.Expr:
    """A system-prompt note (``builtin:sp-030~12``) -> its template's style, else the pool's
    name (``builtin``, or a prompt file's name)."""
    base = ident.str.replace(r"~\d+$", "")
    fallback = base.str.extract(r"^([^:]*)", 1).str.split("/").list.last()
    if not styles:
        return fallback
    return base.replace_strict(styles, default=fallback, return_dtype=pl.String)


def _tally(column: pl.Series, expr: pl.Expr) -> dict[str, int]:
    """Values per label of ``expr`` (on ``x``), the label worked out once per distinct value: the
    same few thousand tool and prompt ids fill millions of rows."""
    counted = pl.DataFrame({"x": column}).group_by("x").len()
    labels = counted.select(expr.alias("label"), "len").drop_nulls("label")
    return {k: int(n) for k, n in labels.group_by("label").agg(pl.col("len").sum()).sort("label").iter_rows()}


def augmentations(out: Output, split: str = "train") -> dict[str, dict[str, Any]]:
    """Per source, from each row's ``meta``: rows carrying each transform's note, and the tool
    domains and system-prompt styles the tools / system_prompt transforms attached. Counted a
    batch of rows at a time: the decoded notes of a 10M-row output would not fit in memory."""
    lf = out.splits.get(split)
    keys = _transform_keys(out.manifest)
    if lf is None or not (out.has("meta") and out.has("source")) or not any(keys.values()):
        return {}
    fields = {f"aug.{p}.{t}": (pl.List(pl.String) if t == "tools" else pl.String)
              for steps in keys.values() for p, t in steps}
    styles = prompt_styles()
    rows = dict.fromkeys(keys, 0)
    touched = {(name, p): 0 for name, steps in keys.items() for p, _ in steps}
    found: dict[tuple[str, int], Counter[str]] = {(name, p): Counter() for name, steps in keys.items() for p, _ in steps}
    decoded = lf.select("source", pl.col("meta").str.json_decode(pl.Struct(fields)).alias("m")).unnest("m")
    for frame in decoded.collect_batches(chunk_size=BATCH_ROWS):
        for name, steps in keys.items():
            part = frame.filter(pl.col("source") == name)
            rows[name] += part.height
            for position, kind in steps:
                column = part.get_column(f"aug.{position}.{kind}")
                touched[name, position] += int(column.is_not_null().sum())
                if kind == "tools":
                    found[name, position].update(_tally(column.explode().drop_nulls(), tool_domain(pl.col("x"))))
                elif kind == "system_prompt":
                    found[name, position].update(_tally(column.drop_nulls(), prompt_style(pl.col("x"), styles)))
    result: dict[str, dict[str, Any]] = {}
    for name, steps in keys.items():
        info: dict[str, Any] = {"rows": rows[name], "touched": {}, "domains": {}, "styles": {}}
        for position, kind in steps:
            info["touched"][position] = touched[name, position]
            tally = info["domains"] if kind == "tools" else info["styles"] if kind == "system_prompt" else None
            if tally is None:
                continue
            for label, n in sorted(found[name, position].items()):
                tally[label] = tally.get(label, 0) + n
        result[name] = info
    return result


# -- example rows --------------------------------------------------------------------------------

def sample(out: Output, seed: int, per_source: int, split: str = "train") -> list[int]:
    """Row numbers of a seeded sample: per source, the rows with the smallest ``rng.draw`` for
    the purpose "report" (the same rows for the same folder, whatever its row order). Without a
    source column (trainer formats), ``2 * per_source`` rows of the whole mixture.

    Ranked a batch of rows at a time, keeping each source's best ``per_source`` so far: the
    ids of a 10M-row output are never in memory at once."""
    lf = out.splits[split]
    draw_salt = rng.salt(seed, "report")
    if out.has("id") and out.has("source"):
        best = pl.DataFrame(schema={"source": pl.String, "draw": pl.UInt64, "row": pl.UInt32})
        start = 0
        for batch in lf.select("id", "source").collect_batches(chunk_size=BATCH_ROWS):
            ids = batch.get_column("id")
            draws = rng.draw(rng.row_keys(ids), draw_salt, rng.repeat_index(ids))
            ranked = batch.select("source", pl.Series("draw", draws, dtype=pl.UInt64),
                                  pl.int_range(start, start + batch.height, dtype=pl.UInt32).alias("row"))
            best = _best(pl.concat([best, ranked]), per_source)
            start += batch.height
        return best.get_column("row").to_list()
    height = lf.select(pl.len()).collect(engine="streaming").item()
    draws = rng.draw(np.arange(height, dtype=np.uint64), draw_salt)
    return np.argsort(draws, kind="stable")[:per_source * 2].tolist()


def _best(ranked: pl.DataFrame, per_source: int) -> pl.DataFrame:
    """Each source's ``per_source`` smallest (draw, row), sources in order of their smallest draw."""
    return ranked.sort("draw", "row").group_by("source", maintain_order=True).head(per_source)


def rows_at(out: Output, split: str, rows: list[int], columns: list[str]) -> pl.DataFrame:
    """``columns`` of the rows at these positions of a split (plus ``_row``), in position order.

    Parquet shards are read a record batch at a time, keeping only the wanted rows, so memory
    stays at one batch however large the output (a lazy filter on the row index decoded the
    whole column: ~0.8 GB for 1M rows of turns); JSON Lines through the lazy scan."""
    lf = out.splits[split]
    files = out.files.get(split) or []
    wanted = np.unique(np.asarray(rows, dtype=np.int64))
    if not files or not all(f.suffix == ".parquet" for f in files):
        return (lf.with_row_index("_row").filter(pl.col("_row").is_in(wanted.tolist()))
                .select("_row", *columns).collect(engine="streaming"))
    import pyarrow.parquet as pq

    parts = []
    start = 0
    for path in files:
        shard = pq.ParquetFile(path)
        sizes = [shard.metadata.row_group(i).num_rows for i in range(shard.metadata.num_row_groups)]
        bounds = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64))) + start
        # only the row groups holding a wanted row are decoded (a handful of examples: one or two)
        hits = np.searchsorted(wanted, bounds)  # wanted rows before each group's start
        for i in np.flatnonzero(hits[1:] > hits[:-1]).tolist():
            first = int(bounds[i])
            for batch in shard.iter_batches(batch_size=10_000, columns=columns, row_groups=[i]):
                lo, hi = np.searchsorted(wanted, [first, first + batch.num_rows])
                if hi > lo:
                    taken = pl.from_arrow(batch.take(wanted[lo:hi] - first))
                    assert isinstance(taken, pl.DataFrame)
                    parts.append(taken.select(pl.Series("_row", wanted[lo:hi], dtype=pl.UInt32), *columns))
                first += batch.num_rows
        start = int(bounds[-1])
    return pl.concat(parts, how="vertical_relaxed") if parts else lf.head(0).with_row_index("_row").select(
        "_row", *columns).collect()


def _in_manifest_order(found: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    order = list(manifest.get("sources") or {})
    return dict(sorted(found.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def example_rows(out: Output, seed: int, per_source: int = 3, split: str = "train") -> dict[str, list[dict]]:
    """A seeded handful of rows per source (see :func:`sample`), as :func:`example_view` shows
    them. Trainer formats keep no source column: their examples are under ``"all rows"``."""
    lf = out.splits.get(split)
    if lf is None:
        return {}
    chosen = sample(out, seed, per_source, split)
    rows = rows_at(out, split, chosen, list(out.schema))
    order = {row: i for i, row in enumerate(chosen)}
    result: dict[str, list[dict]] = {}
    for record in sorted(rows.iter_rows(named=True), key=lambda r: order[r["_row"]]):
        view = example_view(record)
        result.setdefault(view["source"], []).append(view)
    return _in_manifest_order(result, out.manifest)


SAMPLE_ROWS = 5_000  # per source, for lengths the data files do not store


def turn_lengths(out: Output, seed: int, per_source: int = SAMPLE_ROWS,
                 split: str = "train") -> tuple[dict[str, dict[str, np.ndarray]], str | None]:
    """Per source, on a seeded sample of rows: tokens of the turns alone (content and tool calls
    of every turn, or a document's text; no system prompt, no tool specs, no framing) and of the
    assistant turns alone, with the manifest's tokenizer. Canonical output only, since a row's
    source and turns must both be in the file. Returns the lengths and why there are none."""
    lf = out.splits.get(split)
    if lf is None or not out.canonical:
        return {}, None
    name = (out.manifest.get("tokenizer") or {}).get("name")
    if not name:
        return {}, "the manifest names no tokenizer"
    try:
        from mixer.tokens import encoding, lengths

        enc = encoding(str(name))
    except Exception as exc:  # a model tokenizer that is not on this machine, say
        return {}, f"tokenizer {name!r} is not available here ({exc})"
    chosen = sample(out, seed, per_source, split)
    rows = rows_at(out, split, chosen, ["source", "messages", "text"])
    turns = rows.select("_row", "messages").explode("messages", keep_nulls=False).unnest("messages")
    turns = turns.select("_row", *(pl.col(c) if c in turns.columns else pl.lit(None, pl.String).alias(c)
                                   for c in ("role", "content", "tool_calls")))
    pieces = pl.concat([
        turns.select("_row", "role", pl.col("content").alias("s")),
        turns.select("_row", "role", pl.col("tool_calls").alias("s")),
        rows.select("_row", pl.lit("document").alias("role"), pl.col("text").alias("s")),
    ]).with_columns(n=lengths(pl.concat([turns.get_column("content"), turns.get_column("tool_calls"),
                                         rows.get_column("text")]).alias("s"), enc).cast(pl.Int64))
    per_row = rows.select("_row", "source").join(
        pieces.group_by("_row").agg(turns=pl.col("n").sum(),
                                    assistant=pl.col("n").filter(pl.col("role") == "assistant").sum(),
                                    has_assistant=(pl.col("role") == "assistant").any()),
        on="_row", how="left")
    result: dict[str, dict[str, np.ndarray]] = {}
    for (source,), part in per_row.partition_by("source", as_dict=True, maintain_order=True).items():
        result[source] = {"turns": part.get_column("turns").fill_null(0).to_numpy(),
                          "assistant": part.filter(pl.col("has_assistant")).get_column("assistant").to_numpy()}
    return _in_manifest_order(result, out.manifest), None


MAX_TURNS = 12  # turns shown per example row (the report stays small whatever the rows hold)
MAX_TOOLS = 24  # tool names listed per example row

_ROLES = {"human": "user", "gpt": "assistant", "function_call": "assistant", "observation": "tool",
          "system": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


def _json_list(value: Any) -> list:
    if value == "":  # llama-factory's tools of a row without tools
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return list(value) if isinstance(value, (list, tuple)) else ([] if value is None else [value])


def _tool_name(spec: Any) -> str:
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            return spec[:60]
    if isinstance(spec, dict):
        fn = spec.get("function") if isinstance(spec.get("function"), dict) else spec
        return str(fn.get("name", "?"))
    return str(spec)[:60]


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def example_view(record: dict[str, Any]) -> dict[str, Any]:
    """One row of any output format as what a person reads: system prompt, tools, turns or text,
    and which of them an augmentation put there (from canonical ``meta``)."""
    meta: dict[str, Any] = {}
    if isinstance(record.get("meta"), str):
        try:
            meta = json.loads(record["meta"])
        except ValueError:
            meta = {}
    turns = record.get("messages") or record.get("prompt") or record.get("conversations") or []
    system = record.get("system")
    shown = []
    for turn in turns:
        turn = turn if isinstance(turn, dict) else {"role": "?", "content": _as_text(turn)}
        role = _ROLES.get(str(turn.get("role") or turn.get("from")), str(turn.get("role") or turn.get("from")))
        # a JSON Lines output's turns are read with every shape's keys (``jsonl_schema``): sharegpt
        # turns have ``from``/``value`` and a null ``content``
        content = _as_text(turn.get("content") if turn.get("content") is not None else turn.get("value"))
        if role == "system" and not shown and not system:
            system = content
            continue
        calls = turn.get("tool_calls")
        shown.append({"role": role, "content": content,
                      "tool_calls": _as_text(calls) if calls not in (None, [], "") else "",
                      "call": turn.get("from") == "function_call"})
    aug = {key.split(".", 2)[2]: value for key, value in meta.items() if key.startswith("aug.")}
    tools = [_tool_name(t) for t in _json_list(record.get("tools"))]
    return {
        "id": record.get("id") or f"row {record['_row']}",
        "source": record.get("source") or "all rows",
        "kind": record.get("kind") or ("document" if record.get("text") and not turns else "chat"),
        "origin": meta.get("origin"),
        "system": system,
        "system_injected": aug.get("system_prompt"),
        "tools": tools[:MAX_TOOLS],
        "tools_hidden": max(0, len(tools) - MAX_TOOLS),
        "tools_count": len(tools),
        "tools_injected": aug.get("tools") or [],
        "turns": shown[:MAX_TURNS],
        "turns_hidden": max(0, len(shown) - MAX_TURNS),
        "text": record.get("text") if not turns else None,
        "n_tokens": record.get("n_tokens"),
        "augmentations": sorted(aug),
    }
