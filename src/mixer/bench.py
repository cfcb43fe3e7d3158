"""Benchmarks: mixer side by side with what a user would otherwise write, in the same run.

Each measurement runs in a fresh Python process so its peak RSS is its own. Workloads are
canonical rows scaled from the real HH-RLHF slice (perturbed so every row is distinct) or,
without it, from mixer's example chats; they are written once to Parquet and reused.

- ``augment``: ``system_prompt`` + ``tools`` in memory (no I/O, no tokenization), against the
  same augmentation as a plain Python loop and as ``datasets.map(batched=True)`` with
  ``num_proc`` 1 and 2;
- ``tokens``: mixer's token counting against tiktoken's own batch encoding of the same texts
  (distinct, and every occurrence) and a plain one-core loop over its encoder;
- ``build``: a full ``mixer build`` of a three-source recipe (augmentation, dedup, Parquet
  output) against the I/O floor (pyarrow read and write of the same data) plus token counting.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl


STREAM_ONLY = 2_000_000  # above this many rows only the I/O floor and the streaming build run

AUGMENT = (
    {"type": "system_prompt", "p": 0.8},
    {"type": "tools", "p": 0.6, "count": [1, 6]},
)


# --------------------------------------------------------------------------- workloads


def _seed_rows(hh: Path | None) -> pl.DataFrame:
    from mixer.recipe import Source
    from mixer.sources.read import read_source

    if hh is not None and hh.exists():
        return read_source(Source(name="bench", path=str(hh), format="hh-rlhf"))[0]
    # the example chats ship inside the package, so an installed wheel benchmarks the same rows
    with resources.as_file(resources.files("mixer") / "examples" / "harmless_chats.jsonl") as examples:
        return read_source(Source(name="bench", path=str(examples), format="auto"))[0]


def workload(rows: int, cache: Path, hh: Path | None = None) -> Path:
    """Canonical rows scaled to ``rows``, cached as Parquet: the k-th copy of a seed row has
    a marker word appended to its first user turn, so all rows are distinct."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"workload-{rows}.parquet"
    if path.exists():
        return path
    import pyarrow.parquet as pq

    seed = _seed_rows(hh)
    copies = -(-rows // seed.height)
    tmp = path.with_suffix(".tmp")
    writer = None
    left = rows
    for start in range(0, copies, 100):  # written in pieces: 10M rows do not fit in memory at once
        frames = []
        for k in range(start, min(start + 100, copies)):
            marker = f" (variant {k})" if k else ""
            frames.append(seed.with_columns(
                messages=pl.col("messages").list.eval(
                    pl.when(pl.int_range(pl.len()) == 0)
                    .then(pl.element().struct.with_fields(pl.field("content") + marker))
                    .otherwise(pl.element())
                ),
                id=pl.col("id") + f".{k}" if k else pl.col("id"),
            ))
        table = pl.concat(frames).head(left).to_arrow()
        left -= table.num_rows
        writer = writer or pq.ParquetWriter(tmp, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=100_000)
    assert writer is not None
    writer.close()
    tmp.rename(path)
    return path


# --------------------------------------------------------------------------- baselines


def _baseline_pools() -> tuple[list[str], list[dict[str, Any]]]:
    from mixer.pools import builtin_records
    from mixer.pools.prompts import load_bank

    prompts = load_bank("builtin", seed=0, position=0).texts
    tools = [{"type": "function", "function": r["function"]} for r in builtin_records("tools")]
    return prompts, tools


def _words(text: str) -> set[str]:
    import re

    return {w[:5] for w in re.findall(r"[a-z][a-z0-9]{2,}", text.lower())}


def augment_row(row: dict[str, Any], prompts: list[str], tools: list[dict[str, Any]],
                tool_words: list[set[str]]) -> dict[str, Any]:
    """The same augmentation as mixer's transforms, written the way a user would: per row."""
    rng = random.Random(row["id"])
    if row["system"] is None and rng.random() < 0.8:
        row["system"] = rng.choice(prompts)
    if rng.random() < 0.6:
        user = _words(" ".join(m["content"] for m in row["messages"] if m["role"] == "user"))
        want, names, attached = rng.randint(1, 6), set(), list(row["tools"])
        for _ in range(30):
            if len(attached) - len(row["tools"]) >= want:
                break
            i = rng.randrange(len(tools))
            name = tools[i]["function"]["name"]
            if name in names or tool_words[i] & user:
                continue
            names.add(name)
            attached.append(json.dumps(tools[i]))
        row["tools"] = attached
    return row


# --------------------------------------------------------------------------- one measurement


def _measure(kind: str, method: str, path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in this process; returns seconds, rows, tokens and peak RSS."""
    import pyarrow.parquet as pq

    out: dict[str, Any] = {"rows": pq.ParquetFile(path).metadata.num_rows} if path.suffix == ".parquet" else {}
    frame = pl.read_parquet(path) if kind in ("augment", "dedup", "tokens") else None  # build and io read for themselves
    if kind == "augment":
        from mixer import transforms

        if method in ("mixer", "mixer-noguard"):  # without the relevance guard: what the rest costs
            specs = AUGMENT if method == "mixer" else (AUGMENT[0], {**AUGMENT[1], "guard": False})
            start = time.perf_counter()
            transforms.apply(frame, specs, seed=0, source="bench")
        else:
            prompts, tools = _baseline_pools()
            words = [_words(f"{t['function']['name']} {t['function']['description']}") for t in tools]
            if method == "python":
                rows = frame.to_dicts()
                start = time.perf_counter()
                [augment_row(r, prompts, tools, words) for r in rows]
            else:
                import datasets

                datasets.disable_progress_bars()
                ds = datasets.Dataset(frame.to_arrow())
                nproc = int(method.rsplit("-", 1)[1])

                def batch(b: dict[str, list]) -> dict[str, list]:
                    keys = list(b)
                    rows = [augment_row(dict(zip(keys, vals)), prompts, tools, words) for vals in zip(*b.values())]
                    return {k: [r[k] for r in rows] for k in keys}

                start = time.perf_counter()
                ds.map(batch, batched=True, num_proc=nproc if nproc > 1 else None, load_from_cache_file=False)
    elif kind == "dedup":
        from mixer import dedup, text
        from mixer.specs import DedupSpec

        if method in ("mixer", "mixer-again"):  # the exact keys of every row, as a build's read stage makes them
            if method == "mixer-again":  # a second call, as every chunk after a build's first: threads warmed up
                dedup.chunk_keys(frame, DedupSpec(), 0, 0)
            start = time.perf_counter()
            dedup.chunk_keys(frame, DedupSpec(), 0, 0)
        else:  # the plain definition, string by string (a generous baseline: the key texts by Polars)
            start = time.perf_counter()
            keys = frame.select(text.row_text(frame, "conversation")).to_series()
            compat = keys.str.contains(text._COMPAT).to_list()
            [_plain_key(t, c) for t, c in zip(keys.to_list(), compat)]
    elif kind == "tokens":
        from mixer import tokens

        enc = tokens.encoding(extra["tokenizer"] if method == "mixer-model-tokenizer" else "cl100k_base")
        augmented = frame
        if method in ("mixer", "mixer-model-tokenizer"):
            start = time.perf_counter()
            counted = tokens.count(augmented, enc)
            out["tokens"] = int(counted.get_column("n_tokens").sum())
        else:
            texts = _all_texts(augmented)
            if method in ("tiktoken-distinct", "tiktoken-loop"):
                texts = list(dict.fromkeys(texts))
            start = time.perf_counter()
            if method == "tiktoken-loop":  # the bare encoder, one core, no batching overhead
                out["tokens"] = sum(len(enc.encode_ordinary(t)) for t in texts)
            else:  # tiktoken's batch API, as a user would call it
                out["tokens"] = sum(len(t) for t in enc.encode_ordinary_batch(texts))
    elif kind == "io":
        import pyarrow.parquet as pq

        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:  # batch by batch, as a streaming build reads and writes
            source = pq.ParquetFile(path)
            with pq.ParquetWriter(Path(tmp) / "out.parquet", source.schema_arrow, compression="zstd") as writer:
                for batch in source.iter_batches(batch_size=100_000):
                    writer.write_batch(batch)
    elif kind == "jsonl":
        start = time.perf_counter()
        out.update(_jsonl(method, path, extra))
    elif kind == "build":
        from mixer import pipeline
        from mixer.streaming import build_streaming

        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            if method == "mixer-stream":
                manifest = build_streaming(extra["recipe"], Path(tmp) / "out")[1]
            else:
                mixture = pipeline.build(extra["recipe"])
                mixture.write(Path(tmp) / "out")
                manifest = mixture.manifest
        out["rows"] = manifest["totals"]["train"]["rows"]
        out["phases"] = phases(manifest)
    else:
        raise ValueError(kind)
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _plain_key(value: str, compat: bool) -> int:
    """An exact-dedup key by its definition, in plain Python: NFKC where a compatibility
    character occurs, separators as spaces, lower case, runs of spaces as one."""
    if compat:
        value = unicodedata.normalize("NFKC", value)
    value = value.replace("\r", " ").replace("\n", " ").replace("\t", " ").lower()
    return hash(" ".join(w for w in value.split(" ") if w))


def model_tokenizer(path: Path, cache: Path) -> Path | None:
    """A 32k byte-level BPE trained on the workload's first 20k rows, standing in for a model's
    ``tokenizer.json`` (no Hub here); ``None`` without the tokenizers package."""
    try:
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    except ImportError:
        return None
    target = cache / "bpe-32k-tokenizer.json"
    if not target.exists():
        texts = _all_texts(pl.read_parquet(path, n_rows=20_000))
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel()
        tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=32_000, special_tokens=["[UNK]"],
                                                           show_progress=False))
        tok.save(str(target))
    return target


def _all_texts(frame: pl.DataFrame) -> list[str]:
    """Every string mixer's token count covers, one per occurrence (what a per-row loop encodes)."""
    turns = frame.select(pl.col("messages")).explode("messages").unnest("messages")
    parts = [turns.get_column("content"), turns.get_column("tool_calls"), frame.get_column("system"),
             frame.select(pl.col("tools").explode()).to_series(), frame.get_column("text")]
    return [t for s in parts for t in s.drop_nulls().to_list()]


def run_one(kind: str, method: str, path: Path, extra: dict[str, Any] | None = None,
            env: dict[str, str] | None = None) -> dict[str, Any]:
    """One measurement in a fresh process (its own peak RSS); ``env`` adds environment variables
    (e.g. ``PYTHONPATH`` pointing at another revision's sources, for before/after runs)."""
    code = ("import json, sys; from pathlib import Path; from mixer.bench import _measure; "
            "print(json.dumps(_measure(sys.argv[1], sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4]))))")
    parallel = "true" if method == "mixer-model-tokenizer" else "false"  # a model tokenizer encodes on every core
    proc = subprocess.run([sys.executable, "-c", code, kind, method, str(path), json.dumps(extra or {})],
                          capture_output=True, text=True,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": parallel, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark {kind}/{method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- suites


def jsonl_workload(path: Path, cache: Path) -> Path:
    """The workload as OpenAI-messages JSON Lines (system prompt as a turn): the shape people have."""
    out = cache / (path.stem + ".openai.jsonl")
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for batch in pl.read_parquet(path, columns=["system", "messages"]).iter_slices(100_000):
            for row in batch.iter_rows(named=True):
                if any(not (m["content"] or "").strip() for m in row["messages"]):
                    continue  # a tool-call turn without text: not a plain chat once its calls are dropped
                messages = ([{"role": "system", "content": row["system"]}] if row["system"] else []) + [
                    {"role": m["role"], "content": m["content"]} for m in row["messages"]]
                fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    tmp.rename(out)
    return out


def hh_workload(path: Path, cache: Path) -> Path:
    """The workload as HH-RLHF JSON Lines (``chosen`` and ``rejected`` transcripts, ``\\n\\nHuman: ``
    / ``\\n\\nAssistant: ``): the shape of the harmlessness data itself. The rows of the OpenAI
    workload without a system prompt (HH has none); ``rejected`` ends in another answer."""
    out = cache / (path.stem + ".hh.jsonl")
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    speaker = {"user": "Human", "assistant": "Assistant"}
    with tmp.open("w", encoding="utf-8") as fh:
        for batch in pl.read_parquet(path, columns=["system", "messages"]).iter_slices(100_000):
            for row in batch.iter_rows(named=True):
                turns = row["messages"]
                if row["system"] or any(m["role"] not in speaker or not (m["content"] or "").strip() for m in turns):
                    continue
                chosen = "".join(f"\n\n{speaker[m['role']]}: {m['content']}" for m in turns)
                head = "".join(f"\n\n{speaker[m['role']]}: {m['content']}" for m in turns[:-1])
                rejected = head + "\n\nAssistant: Sure, here is how to do that."
                fh.write(json.dumps({"chosen": chosen, "rejected": rejected}, ensure_ascii=False) + "\n")
    tmp.rename(out)
    return out


def _jsonl(method: str, path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """A build from JSON Lines (augmentation on, dedup on, canonical Parquet out), or its floor:
    Polars' ``read_ndjson`` + tiktoken over the distinct texts on every core + a Parquet write."""
    if method == "floor":
        from mixer import tokens

        frame = pl.read_ndjson(path)
        if "chosen" in frame.columns:  # HH-RLHF: the turns of the transcripts, split as a user would
            turns = pl.col("chosen").str.replace_all(r"\n\n(?:Human|Assistant): ", "\x00").str.split("\x00")
            texts = frame.select(turns.explode()).to_series().unique().to_list()
        else:
            texts = frame.select(pl.col("messages").explode().struct.field("content")).to_series().unique().to_list()
        counted = int(tokens.encoded_lengths(texts, tokens.encoding("cl100k_base")).sum())
        with tempfile.TemporaryDirectory() as tmp:
            frame.write_parquet(Path(tmp) / "out.parquet", compression="zstd")
        return {"rows": frame.height, "tokens": counted}
    if method == "datasets":
        return _datasets_pipeline(path, extra)
    from mixer import pipeline
    from mixer.sources import fast, files

    kept = fast.plain_mask, files._table_batches
    if method == "mixer-per-record":  # the reader without its batch path, for the ratio (undone below)
        fast.plain_mask = lambda lines, *_: pl.Series([False] * len(lines))  # type: ignore[assignment]
        files._table_batches = lambda table: None  # type: ignore[assignment]  # Arrow rows as dicts
    try:
        with tempfile.TemporaryDirectory() as tmp:
            recipe = jsonl_recipe(path, extra["rows"], Path(tmp), TRAINER_METHODS.get(method, "canonical"))
            built = pipeline.build_all(recipe, out=Path(tmp) / "out", cache=False,
                                       executor="stream" if method.endswith("stream") else "memory")
            manifest = next(iter(built.mixtures.values())).manifest
    finally:
        fast.plain_mask, files._table_batches = kept
    return {"rows": manifest["totals"]["train"]["rows"], "phases": phases(manifest)}


def phases(manifest: dict[str, Any]) -> dict[str, float]:
    """Seconds per build stage, from the manifest the build wrote (``run.phases``)."""
    out: dict[str, float] = {}
    for p in manifest["run"]["phases"]:
        out[p["phase"]] = out.get(p["phase"], 0.0) + p["seconds"]
    return out


#: build-jsonl methods that write a trainer's format instead of canonical Parquet
TRAINER_METHODS = {"mixer-trl": "trl", "mixer-openai": "openai", "mixer-prompt": "prompt"}


def jsonl_recipe(path: Path, rows: int, folder: Path, fmt: str = "canonical") -> Path:
    """The build-jsonl recipe over ``path`` (JSON Lines or a save_to_disk folder): one source,
    system prompts and tools added, every row, written as ``fmt`` (canonical Parquet by default)."""
    recipe = folder / "jsonl.toml"
    recipe.write_text(f"""
name = "bench-jsonl"
unit = "examples"
total = {rows}
[sources.chats]
path = "{path}"
weight = 1
max_epochs = 2
on_error = "skip"
[output]
report = false
format = "{fmt}"
[[sources.chats.transforms]]
type = "system_prompt"
p = 0.8
[[sources.chats.transforms]]
type = "tools"
p = 0.6
count = [1, 6]
""")
    return recipe


def hub_workload(jsonl: Path, cache: Path) -> Path:
    """The JSON Lines workload as a ``datasets`` ``save_to_disk`` folder (what ``load_dataset``
    users and Hub snapshots have), made once with ``datasets`` itself."""
    out = cache / (jsonl.stem + ".hub")
    if not out.exists():
        import datasets

        datasets.disable_progress_bars()
        tmp = out.with_suffix(".tmp")
        with tempfile.TemporaryDirectory(prefix="mixer-hf-") as hf_cache:  # datasets' Arrow cache of the JSON
            datasets.Dataset.from_json(str(jsonl), cache_dir=hf_cache).save_to_disk(str(tmp))
        tmp.rename(out)
    return out


def _datasets_pipeline(path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """What a user writes instead of mixer: ``load_dataset("json")``, the same augmentation and
    token counts as a batched ``map(num_proc=2)``, ``interleave_datasets`` with the recipe's
    probabilities, ``to_parquet``. (No dedup and no accounting: less work than mixer does.)"""
    import datasets

    from mixer import tokens

    datasets.disable_progress_bars()
    prompts, tools = _baseline_pools()
    words = [_words(f"{t['function']['name']} {t['function']['description']}") for t in tools]
    enc = tokens.encoding("cl100k_base")

    def batch(b: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"system": [], "messages": [], "tools": [], "n_tokens": []}
        chats = b["messages"] if "messages" in b else [_hh_messages(text) for text in b["chosen"]]
        for i, messages in enumerate(chats):
            row = augment_row({"id": json.dumps(messages), "system": None, "messages": messages, "tools": []},
                              prompts, tools, words)
            texts = [m["content"] for m in messages] + ([row["system"]] if row["system"] else []) + row["tools"]
            out["n_tokens"].append(sum(len(enc.encode_ordinary(t)) for t in texts)
                                   + 4 * (len(messages) + bool(row["system"])))
            for key in ("system", "messages", "tools"):
                out[key].append(row[key])
        return out

    with tempfile.TemporaryDirectory() as tmp:
        ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(Path(tmp) / "hf"))
        ds = ds.map(batch, batched=True, num_proc=2, remove_columns=ds.column_names, load_from_cache_file=False)
        mixed = datasets.interleave_datasets([ds], probabilities=[1.0], seed=0, stopping_strategy="all_exhausted")
        mixed.to_parquet(str(Path(tmp) / "out.parquet"))
        return {"rows": len(mixed), "tokens": int(sum(mixed["n_tokens"]))}


def _hh_messages(transcript: str) -> list[dict[str, str]]:
    """An HH-RLHF transcript as chat turns, the way a user splits it (a regex, no repairs)."""
    parts = re.split(r"\n\n(Human|Assistant): ", transcript)
    return [{"role": "user" if speaker == "Human" else "assistant", "content": content}
            for speaker, content in zip(parts[1::2], parts[2::2])]


def _build_recipe(path: Path, folder: Path) -> Path:
    """Three sources cut from the workload, one augmented, dedup on, canonical Parquet output."""
    import pyarrow.parquet as pq

    third = pq.ParquetFile(path).metadata.num_rows // 3
    for i, name in enumerate(("harmless", "advice", "extra")):
        pl.scan_parquet(path).slice(i * third, third).sink_parquet(folder / f"{name}.parquet")
    recipe = folder / "bench.toml"
    recipe.write_text(f"""
name = "bench"
unit = "examples"
[sources.harmless]
path = "harmless.parquet"
examples = {third}
[[sources.harmless.transforms]]
type = "system_prompt"
p = 0.8
[[sources.harmless.transforms]]
type = "tools"
p = 0.6
count = [1, 6]
[sources.advice]
path = "advice.parquet"
examples = {third}
[sources.extra]
path = "extra.parquet"
examples = {third}
""")
    return recipe


WORKLOADS = ("augment", "dedup", "tokens", "io-floor", "build", "build-jsonl", "build-hub", "build-hh")


def suite(sizes: list[int], cache: Path, hh: Path | None, *, baselines: bool = True,
          log: Any = print, workloads: tuple[str, ...] = WORKLOADS) -> list[dict[str, Any]]:
    """Every workload (or those named) at every size; one result row per (workload, size, method)."""
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        raise ValueError(f"unknown workloads {sorted(unknown)}; expected some of {', '.join(WORKLOADS)}")
    results = []
    for n in sizes:
        path = workload(n, cache, hh)
        log(f"{n:,} rows: {path}")
        first = len(results)
        if n > STREAM_ONLY:  # in-memory workloads and baselines would not fit; the target here is memory
            with tempfile.TemporaryDirectory() as tmp:
                recipe = _build_recipe(path, Path(tmp))
                results.append({"workload": "io-floor", "size": n, "method": "pyarrow", **run_one("io", "pyarrow", path)})
                results.append({"workload": "build", "size": n, "method": "mixer-stream",
                                **run_one("build", "mixer-stream", path, {"recipe": str(recipe)})})
            _log_last(results, len(results) - first, log)
            continue
        methods = ["mixer", "mixer-noguard"] + (["python", "datasets-map-1", "datasets-map-2"] if baselines else [])
        if n > 200_000 and baselines:
            methods = ["mixer", "mixer-noguard", "python", "datasets-map-2"]  # num_proc=1 adds nothing new at scale
        for method in methods if "augment" in workloads else []:
            results.append({"workload": "augment", "size": n, "method": method, **run_one("augment", method, path)})
        for method in ["mixer", "mixer-again"] + (["python"] if baselines else []) if "dedup" in workloads else []:
            results.append({"workload": "dedup", "size": n, "method": method, **run_one("dedup", method, path)})
        if "tokens" in workloads:
            for method in ["mixer", "tiktoken-loop", "tiktoken-distinct"] + (["tiktoken-all"] if n <= 200_000 else []):
                results.append({"workload": "tokens", "size": n, "method": method, **run_one("tokens", method, path)})
            tokenizer = model_tokenizer(path, cache)
            if tokenizer is not None:  # budgets in a model's own tokens (tokenizer = "tokenizer.json")
                results.append({"workload": "tokens", "size": n, "method": "mixer-model-tokenizer",
                                **run_one("tokens", "mixer-model-tokenizer", path, {"tokenizer": str(tokenizer)})})
        if "io-floor" in workloads:
            results.append({"workload": "io-floor", "size": n, "method": "pyarrow", **run_one("io", "pyarrow", path)})
        if "build" in workloads:
            with tempfile.TemporaryDirectory() as tmp:
                recipe = _build_recipe(path, Path(tmp))
                for method in ("mixer", "mixer-stream"):
                    results.append({"workload": "build", "size": n, "method": method,
                                    **run_one("build", method, path, {"recipe": str(recipe)})})
        if "build-jsonl" in workloads or "build-hub" in workloads:
            jsonl = jsonl_workload(path, cache)
            lines = sum(1 for _ in jsonl.open("rb"))
        for method in (["mixer", "mixer-stream", *TRAINER_METHODS]
                       + (["mixer-per-record", "floor", "datasets"] if baselines else [])
                       if "build-jsonl" in workloads else []):
            results.append({"workload": "build-jsonl", "size": lines, "method": method,
                            **run_one("jsonl", method, jsonl, {"rows": lines})})
        if "build-hub" in workloads:
            hub = hub_workload(jsonl, cache)  # the same rows as a save_to_disk folder
            for method in ("mixer", "mixer-stream") + (("mixer-per-record",) if baselines else ()):
                results.append({"workload": "build-hub", "size": lines, "method": method,
                                **run_one("jsonl", method, hub, {"rows": lines})})
        if "build-hh" in workloads:
            hh_lines = hh_workload(path, cache)
            rows = sum(1 for _ in hh_lines.open("rb"))
            for method in ("mixer", "mixer-stream") + (("mixer-per-record", "floor", "datasets") if baselines else ()):
                results.append({"workload": "build-hh", "size": rows, "method": method,
                                **run_one("jsonl", method, hh_lines, {"rows": rows})})
        _log_last(results, len(results) - first, log)
    return results


def _log_last(results: list[dict[str, Any]], n: int, log: Any) -> None:
    for r in results[-n:]:
        log(f"  {r['workload']:>9} {r['method']:>17}: {r['rows'] / r['seconds']:>12,.0f} rows/s  "
            f"{r['peak_rss_mb']:>7,.0f} MB")


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table with rates, peak RSS and ratios against the baselines of the same run."""
    def find(workload: str, size: int, method: str) -> dict[str, Any] | None:
        return next((r for r in results if (r["workload"], r["size"], r["method"]) == (workload, size, method)), None)

    lines = ["| workload | rows | method | seconds | rows/s | tokens/s | peak RSS MB | mixer vs this |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        rate = r["rows"] / r["seconds"]
        tok = f"{r['tokens'] / r['seconds']:,.0f}" if r.get("tokens") else ""
        mine = find(r["workload"], r["size"], "mixer")
        ratio = ""
        if mine is not None and r["method"] not in ("mixer", "mixer-stream", "mixer-noguard", "mixer-model-tokenizer",
                                                    "mixer-again", *TRAINER_METHODS):
            ratio = f"{r['seconds'] / mine['seconds']:.1f}x faster" if r["seconds"] >= mine["seconds"] \
                else f"{mine['seconds'] / r['seconds']:.2f}x slower"
        lines.append(f"| {r['workload']} | {r['size']:,} | {r['method']} | {r['seconds']:.2f} | {rate:,.0f} | {tok} | "
                     f"{r['peak_rss_mb']:,.0f} | {ratio} |")
    timed = [r for r in results if r.get("phases")]
    if timed:  # where each build's time goes, from its manifest
        from mixer.engine import STAGES

        stages = [s for s in (*STAGES, "cache") if any(s in r["phases"] for r in timed)]
        lines += ["", "Where the time goes (seconds per stage from each build's manifest; the rest is writing the "
                  "files, start-up and the report):", "",
                  "| workload | rows | method | " + " | ".join(stages) + " | the rest |",
                  "|---|---:|---|" + "---:|" * (len(stages) + 1)]
        for r in timed:
            rest = r["seconds"] - sum(r["phases"].values())
            lines.append(f"| {r['workload']} | {r['size']:,} | {r['method']} | "
                         + " | ".join(f"{r['phases'].get(s, 0.0):.2f}" for s in stages) + f" | {rest:.2f} |")
    sizes = sorted({r["size"] for r in results})
    for n in sizes:
        io, tok = find("io-floor", n, "pyarrow"), find("tokens", n, "mixer")
        model = find("tokens", n, "mixer-model-tokenizer")
        if model and tok:
            lines.append(f"\ntoken counting with a model's tokenizer.json (32k BPE), {n:,} rows: {model['seconds']:.2f} s "
                         f"= {model['seconds'] / tok['seconds']:.2f}x the tiktoken count ({tok['seconds']:.2f} s)")
        for method in ("mixer", "mixer-stream"):
            build = find("build", n, method)
            if build and io and tok:
                floor = io["seconds"] + tok["seconds"]
                lines.append(f"\nfull build ({method}), {n:,} rows: {build['seconds']:.1f} s = "
                             f"{build['seconds'] / floor:.1f}x (I/O floor {io['seconds']:.1f} s + token counting "
                             f"{tok['seconds']:.1f} s); peak RSS {build['peak_rss_mb']:,.0f} MB")
            elif build:
                lines.append(f"\nfull build ({method}), {n:,} rows: {build['seconds']:.1f} s, "
                             f"peak RSS {build['peak_rss_mb']:,.0f} MB")
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from mixer.manifest import versions

    v = versions()
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}; "
            f"Python {v['python']}, polars {v['polars']}, pyarrow {v['pyarrow']}, tiktoken {v['tiktoken']}, "
            f"datasets {v['datasets']}, numpy {v['numpy']}")
