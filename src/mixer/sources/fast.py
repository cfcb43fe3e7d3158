"""A batch path for the commonest input: OpenAI-messages JSON Lines of plain text turns.

The per-record path (:mod:`mixer.sources.adapters`) parses each line with ``json``, adapts it
in Python, and serialises it twice (meta, content digest): about 85 us a row. Most real
chat files are simpler than everything that path handles, so lines are first sorted by what
their bytes show:

- *plain*: ``"messages": [`` with every ``"role"``, ``"content"`` (and ``"id"``) value a JSON
  string, and none of the keys that need the adapter's care (tool calls, tools, names, content
  parts, surrogate escapes). These are decoded by Polars in one call per batch, checked with
  expressions (known roles, system turns first, a user turn, no blank user or assistant turn),
  and turned into canonical rows, meta and content digests with string expressions;
- everything else, and any plain line a check refuses, goes through the per-record path, so
  its row, repair or rejection (with file:line) is exactly what it always was.

The two paths give identical rows, ids, meta and accounting (tests/test_fast_reader.py compares
them on every shared data file and on generated junk); the manifest counts the rows each read
(``read_paths``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from mixer.sources.adapters import NO_ANSWER

BATCH_LINES = 50_000

# A key is a quote, the name, a quote and a colon: inside a JSON string quotes are escaped
# (``\"name\"``), so these never match text, only keys (or invalid JSON, which decoding refuses).
_KEY = r'"(?:%s)"\s*:'
_NEEDS_ADAPTER = ('"tool_calls"', '"function_call"', '"tools"', '"functions"', '"tool_call_id"', '"name"', '"type"')
_SURROGATE_ESCAPE = r"\\u[dD][89a-fA-F]"
_NOT_JSON = r"[:\[,]\s*-?(?:NaN|Infinity)\b"  # Python's json takes these; Polars refuses the batch

_SYSTEM = ("system", "developer")
_ROLES = {"user": "user", "assistant": "assistant", "tool": "tool", "function": "tool"}
_DTYPE = pl.Struct({"messages": pl.List(pl.Struct({"role": pl.String, "content": pl.String})), "id": pl.String})


def plain_mask(lines: pl.Series) -> pl.Series:
    """Which lines' text shows a shape the batch path handles (it may still refuse some): an
    object with one ``"messages": [``, every ``"role"``, ``"content"`` and ``"id"`` value a
    string, no key that needs the adapter's care, no surrogate escape, no NaN/Infinity, no
    repeated key (Python's json keeps the last, Polars the first)."""
    def count(key: str, tail: str = "") -> pl.Expr:
        return pl.col("s").str.count_matches(_KEY % key + tail)

    frame = pl.DataFrame({"s": lines})
    return frame.select(
        pl.col("s").str.strip_chars_start().str.starts_with("{")
        & ~pl.any_horizontal(pl.col("s").str.contains(key, literal=True) for key in _NEEDS_ADAPTER)
        & ~pl.col("s").str.contains(_SURROGATE_ESCAPE)
        & ~pl.col("s").str.contains(_NOT_JSON)
        & (count("messages", r"\s*\[") == 1) & (count("messages") == 1)
        & (count("role") == count("content")) & (count("id") <= 1)
        & (count("role|content|id") == count("role|content|id", r'\s*"'))
    ).to_series().fill_null(False)


@dataclass
class Batch:
    """Canonical columns of the plain lines the checks accepted, and the line numbers refused."""

    rows: pl.DataFrame  # _line, kind, system, messages, tools, text, meta, _digest, _no_answer
    refused: list[int]


def _json_string(expr: pl.Expr) -> pl.Expr:
    """``json.dumps(value, ensure_ascii=False)`` of a string column (serde_json escapes the
    same characters the same way: quote, backslash, control characters)."""
    encoded = pl.struct(expr.alias("s")).struct.json_encode()
    return encoded.str.slice(5, encoded.str.len_chars() - 6)


def _blank(expr: pl.Expr) -> pl.Expr:
    """Python's ``not s.strip()``: empty after removing Unicode whitespace and \\x1c-\\x1f."""
    return ~expr.str.contains(r"[^\s\x1c-\x1f]")


def decode(lines: list[tuple[int, str]], label_json: str) -> Batch:
    """Canonical rows for plain lines (line number, text), as the openai adapter makes them."""
    numbers = [n for n, _ in lines]
    try:
        decoded = pl.Series([text for _, text in lines], dtype=pl.String).str.json_decode(_DTYPE)
    except pl.exceptions.PolarsError:
        if len(lines) == 1:
            return Batch(pl.DataFrame(), numbers)  # these lines go one by one: the adapter names the problem
        half = len(lines) // 2  # one broken line must not send the whole batch the slow way
        first, second = decode(lines[:half], label_json), decode(lines[half:], label_json)
        both = [b.rows for b in (first, second) if b.rows.height]
        return Batch(pl.concat(both) if both else pl.DataFrame(), first.refused + second.refused)
    frame = pl.DataFrame({"_line": pl.Series(numbers, dtype=pl.Int64), "r": decoded}).unnest("r")
    turns = (frame.select("_line", "messages").with_row_index("_row")
             .explode("messages").unnest("messages").with_columns(_pos=pl.int_range(pl.len()).over("_row")))
    is_system = pl.col("role").is_in(_SYSTEM)
    checks = turns.group_by("_row").agg(
        bad_role=(~pl.col("role").is_in([*_SYSTEM, *_ROLES]) | pl.col("role").is_null()).any(),
        null_content=pl.col("content").is_null().any(),
        late_system=(pl.col("_pos").filter(is_system).max().fill_null(-1)
                     > pl.col("_pos").filter(~is_system).min().fill_null(1 << 30)),
        no_turns=(~is_system).sum() == 0,
        no_user=(pl.col("role") == "user").sum() == 0,
        blank=(pl.col("role").is_in(["user", "assistant"]) & _blank(pl.col("content"))).any(),
        no_answer=(pl.col("role") == "assistant").sum() == 0,
    )
    ok = frame.with_row_index("_row").join(checks, on="_row", how="left").with_columns(
        _refused=pl.col("messages").is_null() | pl.col("messages").list.len().eq(0)
        | pl.any_horizontal("bad_role", "null_content", "late_system", "no_turns", "no_user", "blank"),
    )
    refused = ok.filter(pl.col("_refused")).get_column("_line").to_list()
    ok = ok.filter(~pl.col("_refused"))
    if ok.is_empty():
        return Batch(pl.DataFrame(), refused)
    keep = turns.filter(pl.col("_row").is_in(ok.get_column("_row").implode()))
    system = (keep.filter(is_system).group_by("_row", maintain_order=True)
              .agg(system=pl.col("content").str.join("\n\n")))
    mapped = pl.col("role").replace_strict(_ROLES, default=None)
    convo = keep.filter(~is_system).with_columns(role=mapped)
    message = pl.struct(role="role", content="content", tool_calls=pl.lit(None, pl.String),
                        tool_call_id=pl.lit(None, pl.String), name=pl.lit(None, pl.String))
    digest_part = pl.concat_str(pl.lit('{"content": '), _json_string(pl.col("content")),
                                pl.lit(', "name": null, "role": "'), pl.col("role"),
                                pl.lit('", "tool_call_id": null, "tool_calls": null}'))
    messages = convo.group_by("_row", maintain_order=True).agg(messages=message, _parts=digest_part.str.join(", "))
    out = (ok.select("_row", "_line", "id", "no_answer").join(system, on="_row", how="left")
           .join(messages, on="_row", how="left").sort("_line"))
    system_json = pl.when(pl.col("system").is_null()).then(pl.lit("null")).otherwise(_json_string(pl.col("system")))
    out = out.with_columns(
        _digest_text=pl.concat_str(pl.lit('["chat", '), system_json, pl.lit(", ["), pl.col("_parts"),
                                   pl.lit("], [], null]")),
        meta=pl.concat_str(
            pl.lit('{"origin": ' + label_json[:-1] + ":"), pl.col("_line").cast(pl.String), pl.lit('"'),
            pl.when(pl.col("no_answer")).then(pl.lit(f', "repairs": ["{NO_ANSWER}"]')).otherwise(pl.lit("")),
            pl.when(pl.col("id").is_not_null()).then(pl.lit(', "source_id": ') + _json_string(pl.col("id")))
            .otherwise(pl.lit("")),
            pl.lit("}"),
        ),
    )
    digests = [hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
               for text in out.get_column("_digest_text").to_list()]
    rows = out.select(
        "_line", kind=pl.lit("chat"), system="system", messages="messages",
        tools=pl.lit([], pl.List(pl.String)), text=pl.lit(None, pl.String), meta="meta",
        _digest=pl.Series(digests, dtype=pl.String), _no_answer="no_answer",
    )
    return Batch(rows, refused)
