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

import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from mixer.pyexpr import blank, json_string
from mixer.rng import content_hashes
from mixer.sources.adapters import NO_ANSWER
from mixer.sources.formats.sharegpt import SPEAKERS

BATCH_LINES = 10_000

# A key is a quote, the name, a quote and a colon: inside a JSON string quotes are escaped
# (``\"name\"``), so these never match text, only keys (or invalid JSON, which decoding refuses).
_KEY = r'"(?:%s)"\s*:'
_NEEDS_ADAPTER = ('"tool_calls"', '"function_call"', '"tools"', '"functions"', '"tool_call_id"', '"name"', '"type"')
_SURROGATE_ESCAPE = r"\\u[dD][89a-fA-F]"
_NOT_JSON = r"[:\[,]\s*-?(?:NaN|Infinity)\b"  # Python's json takes these; Polars refuses the batch

_SYSTEM = ("system", "developer")
_ROLES = {"user": "user", "assistant": "assistant", "tool": "tool", "function": "tool"}
_DTYPE = pl.Struct({"messages": pl.List(pl.Struct({"role": pl.String, "content": pl.String})), "id": pl.String})
_SHAREGPT_NEEDS_ADAPTER = (*_NEEDS_ADAPTER, '"role"', '"content"', '"observation"', '"function"', '"tool"')
_SHAREGPT_DTYPE = pl.Struct({"conversations": pl.List(pl.Struct({"from": pl.String, "value": pl.String})),
                             "system": pl.String, "id": pl.String})
_ALPACA_DTYPE = pl.Struct({"instruction": pl.String, "input": pl.String, "output": pl.String, "system": pl.String,
                           "id": pl.String})
_PLAIN_SPEAKERS = {k: v for k, v in SPEAKERS.items() if v in ("user", "assistant", "system")}


def _plain_dtype(fmt: str, side: str) -> pl.Struct:
    """The record shape the batch path takes for ``fmt``: every value a string (or a list of
    ``{two strings}`` turns)."""
    return ({"openai": _DTYPE, "sharegpt": _SHAREGPT_DTYPE, "alpaca": _ALPACA_DTYPE}.get(fmt)
            or pl.Struct({side: pl.String, "id": pl.String}))


def plain_mask(lines: pl.Series, fmt: str = "openai", side: str = "chosen") -> pl.Series:
    """Which lines' text shows a shape the batch path handles (it may still refuse some).

    openai: an object with one ``"messages": [``, every ``"role"``, ``"content"`` and ``"id"``
    value a string, no key that needs the adapter's care. hh-rlhf: one string ``side`` field
    (``"chosen"``). Both: no surrogate escape, no NaN/Infinity, no repeated key (Python's json
    keeps the last, Polars the first), at most one string ``"id"``."""
    def count(key: str, tail: str = "") -> pl.Expr:
        return pl.col("s").str.count_matches(_KEY % key + tail)

    common = (pl.col("s").str.strip_chars_start().str.starts_with("{")
              & ~pl.col("s").str.contains(_SURROGATE_ESCAPE)
              & (count("id") <= 1) & (count("id") == count("id", r'\s*"')))
    def paired(first: str, second: str, also: str = "") -> pl.Expr:
        # as many string-valued `first` as `second` keys, and no `first`, `second` (or `also`) key
        # with another value: two counts of the many turn keys and one of the rare case, where
        # counting every key and every string-valued key took four (the same lines, in valid JSON)
        keys = "|".join(k for k in (first, second, also) if k)
        return ((count(first, r'\s*"') == count(second, r'\s*"'))
                & (pl.col("s").str.count_matches(_KEY % keys + r'\s*[^"\s]') == 0))

    if fmt == "openai":
        shape = (~pl.any_horizontal(pl.col("s").str.contains(key, literal=True) for key in _NEEDS_ADAPTER)
                 & (count("messages", r"\s*\[") == 1) & (count("messages") == 1)
                 & paired("role", "content"))
    elif fmt == "sharegpt":
        shape = (~pl.any_horizontal(pl.col("s").str.contains(key, literal=True) for key in _SHAREGPT_NEEDS_ADAPTER)
                 & (count("conversations", r"\s*\[") == 1) & (count("conversations") == 1)
                 & paired("from", "value", "system")
                 & (count("system") <= 1))
    elif fmt == "alpaca":  # flat string fields, no history
        shape = ((count("instruction") == 1) & (count("output") == 1) & (count("input") <= 1) & (count("system") <= 1)
                 & (count("history") == 0)
                 & (count("instruction|output|input|system") == count("instruction|output|input|system", r'\s*"')))
    else:
        key = re.escape(side)
        shape = (count(key) == 1) & (count(key, r'\s*"') == 1)
    frame = pl.DataFrame({"s": lines})
    mask = frame.select(common & shape).to_series().fill_null(False)
    # NaN/Infinity: the regex only where the words occur at all (a literal search is 5x faster)
    maybe = np.flatnonzero(frame.select(pl.col("s").str.contains_any(["NaN", "Infinity"])).to_series()
                           .fill_null(False).to_numpy())
    if len(maybe):
        bad = frame.select(pl.col("s").gather(maybe).str.contains(_NOT_JSON)).to_series().fill_null(False)
        mask = mask.scatter(maybe, mask.gather(maybe) & ~bad)
    return mask


# Arrow columns, and fields of a turn, whose non-null values need the adapter's care (the JSON
# path's _NEEDS_ADAPTER keys); other columns and fields neither path reads.
_ARROW_NEEDS_ADAPTER = {"openai": ("tools", "functions"), "sharegpt": ("tools",), "alpaca": ("history",)}
_ARROW_TURN_NEEDS_ADAPTER = {"openai": ("tool_calls", "function_call", "tool_call_id", "name"),
                             "sharegpt": ("role", "content")}


def arrow_columns(fmt: str = "openai", side: str = "chosen") -> set[str]:
    """The columns of an Arrow-backed input the batch path looks at (the rest it never converts:
    they may have types Polars does not take, and the adapter does not read them either)."""
    return {f.name for f in _plain_dtype(fmt, side).fields} | set(_ARROW_NEEDS_ADAPTER.get(fmt, ()))


def arrow_plain(frame: pl.DataFrame, fmt: str = "openai", side: str = "chosen") -> tuple[pl.Series, pl.DataFrame]:
    """Which rows of an Arrow-backed batch (Hub, ``save_to_disk``, Parquet) show the plain shape,
    and the frame of the format's plain columns to decode them from.

    A record from Arrow has every column of the table (missing values are nulls), so the shape
    is read from the types: the turns column a list of structs with string ``role``/``content``
    (``from``/``value``), the other fields strings, and per row, no turn with a field set that
    the adapter reads for tool calls or names, and no column it would read for tools or history. ``id`` of another type
    is turned into text as the adapter does (``str(value)``)."""
    dtype = _plain_dtype(fmt, side)
    none = pl.Series([False] * frame.height, dtype=pl.Boolean)
    columns: dict[str, pl.Series] = {}
    ok = pl.lit(True)
    for field in dtype.fields:
        have = frame.schema.get(field.name)
        if have is None or have == pl.Null:
            columns[field.name] = pl.Series(field.name, [None] * frame.height, dtype=field.dtype)
        elif field.name == "id" and have != pl.String:
            values = frame.get_column("id")
            columns["id"] = (values.cast(pl.String) if have.is_integer() else pl.Series(
                "id", [None if v is None or isinstance(v, (dict, list)) else str(v) for v in values.to_list()],
                dtype=pl.String))
        elif have == field.dtype:
            columns[field.name] = frame.get_column(field.name)
        elif isinstance(field.dtype, pl.List) and isinstance(have, pl.List) and isinstance(have.inner, pl.Struct):
            wanted = [f.name for f in field.dtype.inner.fields]
            got = {f.name: f.dtype for f in have.inner.fields}
            if any(got.get(name) not in (pl.String, pl.Null) for name in wanted):
                return none, pl.DataFrame()
            extra = [name for name in _ARROW_TURN_NEEDS_ADAPTER.get(fmt, ()) if name in got]
            turn = pl.element().struct
            if extra:  # a turn with tool calls, a name, ...: the adapter's
                ok = ok & pl.col(field.name).list.eval(pl.all_horizontal(turn.field(x).is_null() for x in extra)
                                                       ).list.all().fill_null(True)
            columns[field.name] = frame.select(pl.col(field.name).list.eval(
                pl.struct(**{name: turn.field(name).cast(pl.String) if name in got else pl.lit(None, pl.String)
                             for name in wanted}))).to_series()
        else:
            return none, pl.DataFrame()
    for name in _ARROW_NEEDS_ADAPTER.get(fmt, ()):
        if name in frame.columns:
            ok = ok & pl.col(name).is_null()
    return frame.select(ok.alias("ok")).to_series().fill_null(False), pl.DataFrame(columns)


def arrow_batch(frame: pl.DataFrame, first_line: int, label_json: str, fmt: str = "openai",
                side: str = "chosen") -> Batch:
    """Canonical rows of the plain rows of an Arrow-backed batch whose first row is record
    ``first_line``; every other row (refused by shape or by a check) is left to the adapter."""
    mask, plain = arrow_plain(frame, fmt, side)
    if not mask.any():
        return Batch(pl.DataFrame(), [])
    plain = plain.with_columns(_line=pl.int_range(first_line, first_line + frame.height, dtype=pl.Int64))
    return rows_of(plain.filter(mask), label_json, fmt, side)


@dataclass
class Batch:
    """Canonical columns of the plain lines the checks accepted, and the line numbers refused."""

    rows: pl.DataFrame  # _line, kind, system, messages, tools, text, meta, _digest, _no_answer
    refused: list[int]


def decode(numbers: np.ndarray, texts: pl.Series, label_json: str, fmt: str = "openai", side: str = "chosen") -> Batch:
    """Canonical rows for plain lines (their numbers and texts), exactly as the ``fmt`` adapter
    makes them; the lines its checks refuse are returned apart."""
    dtype = _plain_dtype(fmt, side)
    try:
        decoded = texts.str.json_decode(dtype)
    except pl.exceptions.PolarsError:
        if len(numbers) == 1:
            return Batch(pl.DataFrame(), numbers.tolist())  # these lines go one by one: the adapter names the problem
        half = len(numbers) // 2  # one broken line must not send the whole batch the slow way
        first = decode(numbers[:half], texts.slice(0, half), label_json, fmt, side)
        second = decode(numbers[half:], texts.slice(half), label_json, fmt, side)
        both = [b.rows for b in (first, second) if b.rows.height]
        return Batch(pl.concat(both) if both else pl.DataFrame(), first.refused + second.refused)
    return rows_of(pl.DataFrame({"_line": pl.Series(numbers, dtype=pl.Int64), "r": decoded}).unnest("r"),
                   label_json, fmt, side)


def rows_of(frame: pl.DataFrame, label_json: str, fmt: str = "openai", side: str = "chosen") -> Batch:
    """Canonical rows for a frame of ``_line`` and the format's plain columns (as decoded from
    JSON or taken from Arrow), exactly as the ``fmt`` adapter makes them; the lines its checks
    refuse are returned apart."""
    frame = frame.with_row_index("_row")
    ok, convo, system = (_openai(frame) if fmt == "openai" else _sharegpt(frame) if fmt == "sharegpt"
                         else _alpaca(frame) if fmt == "alpaca" else _hh(frame, side))
    ok = ok.with_columns(pl.col("_refused").fill_null(True))  # a check that could not say: the adapter decides
    refused = ok.filter(pl.col("_refused")).get_column("_line").to_list()
    ok = ok.filter(~pl.col("_refused"))
    if ok.is_empty():
        return Batch(pl.DataFrame(), refused)
    return Batch(_canonical(ok, convo, system, label_json), refused)


def _checked(frame: pl.DataFrame, turns: pl.DataFrame, column: str) -> pl.DataFrame:
    """The checks every chat adapter makes (``finish_chat`` and the turn loop), on ``turns``
    (``_row, _pos, role, content``; role user/assistant/tool/system, null when unknown): rows
    of ``frame`` with ``_refused`` and ``_repairs``. A refused row goes to the adapter."""
    is_system = pl.col("role") == "system"
    checks = turns.group_by("_row").agg(
        bad_role=pl.col("role").is_null().any(),
        null_content=pl.col("content").is_null().any(),
        late_system=(pl.col("_pos").filter(is_system).max().fill_null(-1)
                     > pl.col("_pos").filter(~is_system).min().fill_null(1 << 30)),
        no_turns=(~is_system).sum() == 0,
        no_user=(pl.col("role") == "user").sum() == 0,
        blank=(pl.col("role").is_in(["user", "assistant"]) & blank(pl.col("content"))).any(),
        no_answer=(pl.col("role") == "assistant").sum() == 0,
    )
    return frame.join(checks, on="_row", how="left").with_columns(
        _refused=pl.col(column).is_null() | pl.col(column).list.len().eq(0)
        | pl.any_horizontal("bad_role", "null_content", "late_system", "no_turns", "no_user", "blank"),
        _repairs=pl.when(pl.col("no_answer")).then(pl.lit([NO_ANSWER], pl.List(pl.String)))
        .otherwise(pl.lit([], pl.List(pl.String))),
    )


def _openai(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The openai adapter's checks and turns: (rows with ``_refused``/``_repairs``, turns, system)."""
    role = pl.col("role")
    turns = (frame.select("_row", "messages").explode("messages").unnest("messages")
             .with_columns(_pos=_runs("_row")[0],
                           role=pl.when(role.is_in(_SYSTEM)).then(pl.lit("system"))
                           .otherwise(role.replace_strict(_ROLES, default=None))))
    is_system = pl.col("role") == "system"
    system = (turns.filter(is_system).group_by("_row", maintain_order=True)
              .agg(system=pl.col("content").str.join("\n\n")))
    return _checked(frame, turns, "messages"), turns.filter(~is_system).select("_row", "role", "content"), system


def _sharegpt(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The sharegpt adapter's checks and turns for plain ``{from, value}`` turns: speakers mapped
    case-blind, the record's ``system`` first, then system turns (only before the conversation)."""
    turns = (frame.select("_row", "conversations").explode("conversations").unnest("conversations")
             .select("_row", _pos=_runs("_row")[0], content="value",
                     role=pl.col("from").str.to_lowercase().replace_strict(_PLAIN_SPEAKERS, default=None)))
    is_system = pl.col("role") == "system"
    own = frame.filter(pl.col("system").is_not_null() & (pl.col("system") != "")).select(
        "_row", _pos=pl.lit(-1, pl.Int64), content="system")
    parts = pl.concat([own, turns.filter(is_system).select("_row", pl.col("_pos").cast(pl.Int64), "content")])
    system = (parts.sort("_row", "_pos").group_by("_row", maintain_order=True)
              .agg(system=pl.col("content").str.join("\n\n")))
    return (_checked(frame, turns, "conversations"), turns.filter(~is_system).select("_row", "role", "content"),
            system)


def _alpaca(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The alpaca adapter for rows without history: ``instruction`` (+ a blank line and
    ``input`` when it is not empty) is the user turn, ``output`` the answer, ``system`` kept."""
    extra = pl.col("input")
    user = (pl.when(extra.is_null() | (extra == "")).then(pl.col("instruction"))
            .otherwise(pl.concat_str(pl.col("instruction"), pl.lit("\n\n"), extra)))
    rows = frame.with_columns(_user=user)
    ok = rows.with_columns(
        _refused=(pl.col("instruction").is_null() | pl.col("output").is_null() | blank(pl.col("_user"))
                  | blank(pl.col("output"))).fill_null(True),
        _repairs=pl.lit([], pl.List(pl.String)),
    )
    convo = pl.concat([rows.select("_row", _k=pl.lit(0), role=pl.lit("user"), content="_user"),
                       rows.select("_row", _k=pl.lit(1), role=pl.lit("assistant"), content="output")]
                      ).sort("_row", "_k").drop("_k")
    system = rows.filter(pl.col("system").is_not_null() & (pl.col("system") != "")).select("_row", "system")
    return ok, convo, system


_HH_SPEAKERS = ("Human", "Assistant")
MERGED, REMOVED_EMPTY = "merged consecutive turns", "removed empty final turn"


def _marked(text: pl.Expr) -> pl.Expr:
    """Each separator the adapter splits at (``\\n\\nHuman: ``, ``\\n\\nAssistant: ``) as NUL,
    speaker, NUL: one literal multi-pattern pass, three times faster than the adapter's regex
    with the same result (tests/test_fast_reader.py)."""
    return text.str.replace_many([f"\n\n{who}: " for who in _HH_SPEAKERS], [f"\x00{who}\x00" for who in _HH_SPEAKERS])


def _runs(key: str) -> tuple[pl.Expr, pl.Expr]:
    """For a frame sorted by ``key``: each row's position in its run of equal keys, and the
    run's length. What ``int_range(len()).over(key)`` and ``len().over(key)`` give, without
    hashing the key (a window over 400k turns cost more than the rest of the transcript split)."""
    at = pl.int_range(pl.len(), dtype=pl.Int64)
    first = pl.col(key) != pl.col(key).shift(1)
    last = pl.col(key) != pl.col(key).shift(-1)
    start = pl.when(first.fill_null(True)).then(at).forward_fill()
    end = pl.when(last.fill_null(True)).then(at).backward_fill()
    return at - start, end - start + 1


def _hh(frame: pl.DataFrame, side: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The hh-rlhf adapter on whole batches: split the transcript at ``\\n\\nHuman: `` /
    ``\\n\\nAssistant: ``, merge consecutive turns of one speaker (joined by a blank line),
    drop an empty final Assistant turn, each repair recorded in order."""
    text = pl.col(side)
    # split at the separators: mark them with NUL (refused where the text has one), then split
    parts = frame.select(
        "_row", _nul=text.str.contains("\x00", literal=True).fill_null(True),
        _parts=_marked(text).str.split("\x00"),
    )
    position, _ = _runs("_row")
    pieces = parts.select("_row", "_parts").explode("_parts").with_columns(_i=position)  # sorted by _row, _i
    head = pieces.filter(pl.col("_i") == 0).select("_row", _lead_blank=blank(pl.col("_parts")))
    # a speaker piece is followed by its content piece (the split always gives both)
    turns = (pieces.with_columns(content=pl.col("_parts").shift(-1)).filter(pl.col("_i") % 2 == 1)
             .select("_row", role=pl.when(pl.col("_parts") == "Human").then(pl.lit("user"))
                     .otherwise(pl.lit("assistant")), content="content"))
    # runs of one speaker in one row are merged; the turns are in row order, so a run is a
    # stretch of equal (row, role): numbered globally, and only runs of two or more aggregated
    same = (pl.col("_row") == pl.col("_row").shift(1)) & (pl.col("role") == pl.col("role").shift(1))
    turns = turns.with_columns(_group=(~same.fill_null(False)).cum_sum())
    _, size = _runs("_group")
    turns = turns.with_columns(_n=size.cast(pl.UInt32))
    alone = turns.filter(pl.col("_n") == 1)
    joined = (turns.filter(pl.col("_n") > 1).group_by("_group", maintain_order=True)
              .agg(pl.col("_row").first(), pl.col("role").first(), pl.col("content").str.join("\n\n"),
                   pl.col("_n").first()))
    merged = pl.concat([alone, joined.select(alone.columns)]).sort("_group") if joined.height else alone
    k, count = _runs("_row")
    merged = merged.with_columns(_k=k, _count=count)
    last = pl.col("_k") == pl.col("_count") - 1
    drop_last = last & (pl.col("_count") > 1) & (pl.col("role") == "assistant") & blank(pl.col("content"))
    per_row = merged.group_by("_row").agg(
        _merges=(pl.col("_n") - 1).sum(), _removed=drop_last.any())
    kept = merged.filter(~drop_last)
    checks = kept.group_by("_row").agg(
        no_user=(pl.col("role") == "user").sum() == 0,
        blank=blank(pl.col("content")).any(),
        no_answer=(pl.col("role") == "assistant").sum() == 0,
    )
    merged_json = pl.lit(MERGED).repeat_by(pl.col("_merges"))
    ok = (frame.select("_row", "_line", "id").join(parts.select("_row", "_nul", _n_parts=pl.col("_parts").list.len()),
                                                   on="_row")
          .join(head, on="_row", how="left").join(per_row, on="_row", how="left").join(checks, on="_row", how="left")
          .with_columns(
              _refused=pl.col("_nul") | (pl.col("_n_parts") < 3) | ~pl.col("_lead_blank").fill_null(False)
              | pl.col("no_user").fill_null(True) | pl.col("blank").fill_null(True),
              _repairs=pl.concat_list(
                  merged_json.fill_null(pl.lit([], pl.List(pl.String))),
                  pl.when(pl.col("_removed")).then(pl.lit([REMOVED_EMPTY], pl.List(pl.String)))
                  .otherwise(pl.lit([], pl.List(pl.String))),
                  pl.when(pl.col("no_answer")).then(pl.lit([NO_ANSWER], pl.List(pl.String)))
                  .otherwise(pl.lit([], pl.List(pl.String))),
              )))
    system = pl.DataFrame(schema={"_row": pl.UInt32, "system": pl.String})
    return ok, kept.select("_row", "role", "content"), system


def _canonical(ok: pl.DataFrame, convo: pl.DataFrame, system: pl.DataFrame, label_json: str) -> pl.DataFrame:
    """Canonical columns, meta and content digest of accepted rows, as the per-record path writes them."""
    convo = convo.filter(pl.col("_row").is_in(ok.get_column("_row").implode()))
    message = pl.struct(role="role", content="content", tool_calls=pl.lit(None, pl.String),
                        tool_call_id=pl.lit(None, pl.String), name=pl.lit(None, pl.String))
    digest_part = pl.concat_str(pl.lit('{"content": '), json_string(pl.col("content")),
                                pl.lit(', "name": null, "role": "'), pl.col("role"),
                                pl.lit('", "tool_call_id": null, "tool_calls": null}'))
    # each turn's digest text is built on the flat turns, then joined per row (an expression inside
    # the aggregation runs group by group: 30% slower)
    messages = (convo.with_columns(_part=digest_part).group_by("_row", maintain_order=True)
                .agg(messages=message, _parts="_part").with_columns(pl.col("_parts").list.join(", ")))
    out = (ok.select("_row", "_line", "id", "_repairs").join(system, on="_row", how="left")
           .join(messages, on="_row", how="left").sort("_line"))
    system_json = pl.when(pl.col("system").is_null()).then(pl.lit("null")).otherwise(json_string(pl.col("system")))
    repairs_json = pl.col("_repairs").list.eval(pl.lit('"') + pl.element() + pl.lit('"')).list.join(", ")
    out = out.with_columns(
        _digest_text=pl.concat_str(pl.lit('["chat", '), system_json, pl.lit(", ["), pl.col("_parts"),
                                   pl.lit("], [], null]")),
        meta=pl.concat_str(
            pl.lit('{"origin": ' + label_json[:-1] + ":"), pl.col("_line").cast(pl.String), pl.lit('"'),
            pl.when(pl.col("_repairs").list.len() > 0).then(pl.lit(', "repairs": [') + repairs_json + pl.lit("]"))
            .otherwise(pl.lit("")),
            pl.when(pl.col("id").is_not_null()).then(pl.lit(', "source_id": ') + json_string(pl.col("id")))
            .otherwise(pl.lit("")),
            pl.lit("}"),
        ),
    )
    digests = content_hashes(out.get_column("_digest_text"))
    return out.select(
        "_line", kind=pl.lit("chat"), system="system", messages="messages",
        tools=pl.lit([], pl.List(pl.String)), text=pl.lit(None, pl.String), meta="meta",
        _digest=digests, _repairs="_repairs",
    )
