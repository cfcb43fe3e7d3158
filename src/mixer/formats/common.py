"""Pieces every output format shares: the :class:`Format` a format module registers, the
rejection type and canonical-row helpers."""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: A written row read back for the audit: (messages with the system turn first, ``tools`` the
#: trainer passes to the template, whether it renders a generation prompt, tools the row carries)
ReadBack = tuple[list[dict[str, Any]], "list[dict[str, Any]] | None", bool, list[dict[str, Any]]]


@dataclass(frozen=True)
class Format:
    """One output format, declared once as ``FORMAT`` in its own module of :mod:`mixer.formats`
    (which finds it there): everything the recipe, the build, the writers and the audit need
    to know about it.

    A module that declares ``FORMAT`` is the whole format: adding one is adding a module.
    """

    name: str
    suffix: str  # file type of its shards: "parquet" or "jsonl"
    convert: Callable[..., dict[str, Any]] | None  # one canonical row -> one written row; None: rows pass through
    summary: str  # one line for the docs and ``--help``: which trainer reads it
    features: Callable[[], Any] | None = None  # its ``datasets`` features (the dataset card, to_datasets)
    tool_name: re.Pattern[str] | None = None  # the rule tool names must follow, if it has one
    aliases: tuple[str, ...] = ()  # other ``output.format`` names for it (canonical: parquet, jsonl)
    keys: tuple[str, ...] = ()  # ``[output]`` keys that only this format takes
    options: Callable[[Any, Path], dict[str, Any]] | None = None  # (output spec, recipe folder) -> convert kwargs
    # files written beside the data: {file name: (build name, {split: its path}) -> its text}; a
    # split's path is its shard's, or its folder's with ``split_folders``
    side_files: dict[str, Callable[[str, dict[str, str]], str]] = field(default_factory=dict)
    read_back: Callable[[dict[str, Any]], ReadBack] | None = None  # for the audit; None: already rendered text
    prompts: bool = False  # rows are prompts the model completes (RL): no written token is an answer to train on
    order: int = 50  # place in listings
    # the whole shard at once (with the converter's options): (Arrow table in its features, or
    # JSON lines; which rows it holds) or None (row by row)
    convert_frame: Callable[..., tuple[Any, Any] | None] | None = None
    # the trainer names a split by one path (LLaMA-Factory's ``file_name``): each split's shards are
    # written in a folder of their own, ``data/{split}/``, and the side files name the folder
    split_folders: bool = False
    # the trainer takes one file a split (an OpenAI fine-tuning job: one training_file, one
    # validation_file): a split's JSON Lines shards are joined into one file once written
    one_file_per_split: bool = False
    # why a configuration of the trainer cannot render a tool spec (its JSON text), or None: rows
    # carrying one are still written (other configurations render them), and counted and warned about
    tool_problem: Callable[[str], str | None] | None = None

    @property
    def converts(self) -> bool:
        """Whether rows are converted (a trainer format) rather than written as mixer's own rows."""
        return self.convert is not None


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Python's cyclic garbage collector off while rows are converted or written one by one.
    Those loops make millions of small dicts and lists that live until the shard is written, and
    the collector would scan them all again and again; none of them form cycles. 500,000 openai
    rows: converting 15.2 -> 7.0 s, serialising 19.6 -> 14.2 s."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parsed(value: Any) -> Any:
    """A JSON value that a written file may hold as text (JSON Lines, datasets without ``Json``)."""
    return json.loads(value) if isinstance(value, str) else value


def present(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without the null fields a columnar file gives every turn."""
    return [{k: v for k, v in m.items() if v is not None} for m in messages]


class Unrepresentable(ValueError):
    """The target format cannot carry this row; the message is the counted reason, ``detail``
    (in rejects.jsonl) what in this row broke it."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.detail = detail


def tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A canonical turn's tool calls as OpenAI objects (arguments stay JSON strings)."""
    return json.loads(message["tool_calls"]) if message.get("tool_calls") else []


def tools(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A row's tool specs as ``{"type": "function", "function": {...}}`` objects, to read: each
    distinct spec is parsed once and the object shared by every row that carries it (a catalog's
    specs recur on thousands of rows, and parsing them row by row was most of an export). Change
    a copy, never these (:func:`rename_tools` parses its own)."""
    return [spec(t) for t in row.get("tools") or []]


@functools.lru_cache(maxsize=65_536)
def spec(text: str) -> dict[str, Any]:
    """One tool spec's object, parsed once (shared: read it, never change it)."""
    return json.loads(text)


def distinct_specs(frame: Any) -> Any:
    """Every distinct tool spec text of ``frame``'s rows, as a string Series."""
    import polars as pl

    return frame.select(pl.col("tools").explode().drop_nulls().unique()).to_series()


def per_spec(frame: Any, make: Callable[[str], str | None]) -> Any:
    """An element expression for a ``tools`` list: each spec text as ``make`` turns it (null where
    it gives None), ``make`` called once per distinct spec of ``frame``, not once per row."""
    import polars as pl

    texts = distinct_specs(frame)
    return pl.element().replace_strict(texts, pl.Series([make(t) for t in texts.to_list()], dtype=pl.String),
                                       default=None, return_dtype=pl.String)


def rename_tools(row: dict[str, Any], rule: re.Pattern[str]) -> dict[str, str]:
    """Rename the row's tools whose names break ``rule`` (in its specs, its assistant tool calls
    and its tool-result turns, consistently), in place; returns ``{old: new}``.

    A name keeps its allowed characters, others become ``_``, cut to 64; a clash with another
    name of the row gets ``_2``, ``_3``... Tools folded into a system prompt as text are not touched.
    """
    specs = [json.loads(t) for t in row.get("tools") or []]  # changed below: not the shared objects
    names = [s["function"]["name"] for s in specs]
    names += [c["function"]["name"] for m in row["messages"] for c in tool_calls(m)]
    taken = {n for n in names if rule.match(n)}
    mapping: dict[str, str] = {}
    for name in names:
        if name in mapping or rule.match(name):
            continue
        base = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "tool"
        new, k = base, 1
        while new in taken or not rule.match(new):
            k += 1
            new = f"{base[:64 - len(str(k)) - 1]}_{k}"
        mapping[name] = new
        taken.add(new)
    if not mapping:
        return mapping
    for spec in specs:
        spec["function"]["name"] = mapping.get(spec["function"]["name"], spec["function"]["name"])
    row["tools"] = [json.dumps(s, ensure_ascii=False) for s in specs]
    turns = []
    for m in row["messages"]:
        m = dict(m)
        calls = tool_calls(m)
        if calls:
            for c in calls:
                c["function"]["name"] = mapping.get(c["function"]["name"], c["function"]["name"])
            m["tool_calls"] = json.dumps(calls, ensure_ascii=False)
        if m.get("role") == "tool" and m.get("name") in mapping:
            m["name"] = mapping[m["name"]]
        turns.append(m)
    row["messages"] = turns
    return mapping


def require_chat(row: dict[str, Any], fmt: str) -> None:
    if row["kind"] != "chat":
        raise Unrepresentable(f"{fmt} holds conversations; documents need format = \"text\"")


def require_answer(row: dict[str, Any], fmt: str) -> None:
    """SFT formats train on a final assistant turn: a prompt-only row is counted, never written half."""
    if row["kind"] == "chat" and (not row["messages"] or row["messages"][-1]["role"] != "assistant"):
        raise Unrepresentable(f"{fmt} trains on a final assistant turn and this row has none (a prompt-only row: "
                              "use format = \"prompt\")")


def openai_messages(row: dict[str, Any], *, system: bool = True) -> list[dict[str, Any]]:
    """OpenAI-style messages: the system prompt first, then turns with only the keys they use."""
    out: list[dict[str, Any]] = []
    if system and row.get("system") is not None:
        out.append({"role": "system", "content": row["system"]})
    for m in row["messages"]:
        msg: dict[str, Any] = {"role": m["role"], "content": m["content"]}
        calls = tool_calls(m)
        if calls:
            msg["tool_calls"] = calls
        if m["role"] == "tool":
            if m.get("tool_call_id") is not None:
                msg["tool_call_id"] = m["tool_call_id"]
            if m.get("name") is not None:
                msg["name"] = m["name"]
        out.append(msg)
    return out


_BLOCK_HEAD = ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
               "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n")
_BLOCK_TAIL = "\n</tools>"


def render_tools_block(specs: list[dict[str, Any]]) -> str:
    """The tools block used where a trainer has no tools field (torchtune, plain text)."""
    lines = "\n".join(json.dumps(s, ensure_ascii=False) for s in specs)
    return f"{_BLOCK_HEAD}{lines}{_BLOCK_TAIL}"


def any_tools() -> Any:
    """An empty string where a row has tools, null where it has none: a part of ``concat_str``
    that makes the whole null for rows without tools. (when/then over the long texts themselves
    is slow: 100k rows' tools blocks, 1.25 s against 0.17 s.)"""
    import polars as pl

    return pl.when(pl.col("tools").list.len() > 0).then(pl.lit(""))


def system_with_tools(frame: Any, as_json: bool = False) -> Any:
    """An expression over ``frame``'s rows: the system prompt with the row's tools block folded in,
    as the ``prompt`` and ``torchtune`` converters make it (the block after a blank line, or alone
    when there is no system prompt); null when the row has neither. Each distinct spec is written
    once (``json.dumps`` of its object, as :func:`render_tools_block` writes it). ``as_json``: the
    text as a JSON string (``json.dumps``), made of each piece escaped once rather than of the
    whole text escaped row by row (a block recurs on many rows: 100k rows, 1.45 -> 0.1 s)."""
    import polars as pl

    from mixer.pyexpr import escaped, json_escaped

    text = escaped if as_json else str
    line = per_spec(frame, lambda t: text(json.dumps(spec(t), ensure_ascii=False)))
    block = pl.concat_str(pl.lit(text(_BLOCK_HEAD)), pl.col("tools").list.eval(line).list.join(text("\n")),
                          pl.lit(text(_BLOCK_TAIL)), any_tools())
    system = json_escaped(pl.col("system")) if as_json else pl.col("system")
    out = pl.coalesce(pl.concat_str(system, pl.lit(text("\n\n")), block), block, system)
    return pl.concat_str(pl.lit('"'), out, pl.lit('"')) if as_json else out


def plain_turns_refused(blank_content: bool = False) -> Any:
    """An element expression over a row's turns: true for a turn a plain-chat batch path does not
    write (not a user or assistant turn, no string content, a tool call; with ``blank_content``,
    a blank content too). Such rows are left to the row converter."""
    import polars as pl

    from mixer.pyexpr import blank

    turn = pl.element().struct
    content, calls = turn.field("content"), turn.field("tool_calls")
    refused = (~turn.field("role").is_in(["user", "assistant"]) | content.is_null()
               | (calls.is_not_null() & (calls != "")))
    return refused | blank(content) if blank_content else refused


def messages_json(system: Any) -> Any:
    """``{"messages": [`` and the row's turns as OpenAI messages, ``json.dumps`` bytes, without the
    closing brace: a system turn of ``system`` (a JSON string expression; null: none) first, then
    the user and assistant turns (:func:`plain_turns_refused` rows only)."""
    import polars as pl

    from mixer.pyexpr import json_string

    turn = pl.element().struct
    return pl.concat_str(
        pl.lit('{"messages": ['),
        pl.concat_str(pl.lit('{"role": "system", "content": '), system, pl.lit("}, ")).fill_null(""),
        pl.col("messages").list.eval(pl.concat_str(pl.lit('{"role": "'), turn.field("role"),
                                                   pl.lit('", "content": '), json_string(turn.field("content")),
                                                   pl.lit("}"))).list.join(", "),
        pl.lit("]"))


LINE_SLICE = 50_000  # rows whose JSON lines are built at once: the texts a line is joined from outweigh it


def own_arrays(part: Any) -> Any:
    """``part``'s rows in arrays of their own, so that exporting it to Arrow costs its own size.
    Polars exports a slice of a list column with its parent's whole child array (``rechunk``
    keeps a one-chunk slice as it is): at 500k rows, a 50k-row group of a 250k-row shard took 1 s
    to export, against 0.03 s gathered."""
    import polars as pl

    return part.select(pl.all().gather(pl.int_range(pl.len())))


def lines_of(rows: Any, line: Callable[[Any], Any]) -> Any:
    """The string Series of ``line(part)`` (an expression over a part's rows) of ``rows``, built
    :data:`LINE_SLICE` rows at a time: the texts a line is made of (a tools block folded into a
    system turn, say) are made again for each line, so a whole shard's would outweigh its lines."""
    import polars as pl

    parts = [part.select(line(part)).to_series() for part in rows.iter_slices(LINE_SLICE)]
    return pl.concat(parts) if parts else pl.Series(dtype=pl.String)


def has_json_feature() -> bool:
    """Whether the installed ``datasets`` has the ``Json`` feature (4.7 and later)."""
    import datasets

    return hasattr(datasets, "Json")


def json_feature() -> Any:
    """The feature of a free-form JSON value: ``Json`` where ``datasets`` has it, else a string.

    ``datasets`` before 4.7 (LLaMA-Factory 0.9.5 pins 4.0.0) cannot even parse a card that
    declares ``Json``, and Arrow structs would pad heterogeneous tool schemas with nulls, so there
    the value is written as its JSON text: lossless, loadable by every ``datasets`` version, and
    turned back into objects by :func:`decode_json` (TRL's SFT/DPO trainers decode a string
    ``tools`` column themselves).
    """
    import datasets

    return datasets.Json() if has_json_feature() else datasets.Value("string")


def encode_json(value: Any) -> Any:
    """A value for a :func:`json_feature` column: as is for ``Json``, JSON text otherwise."""
    if value is None or has_json_feature():
        return value
    return json.dumps(value, ensure_ascii=False)


_JSON_KEYS = ("tools", "tool_calls")


def decode_json(example: dict[str, Any]) -> dict[str, Any]:
    """Turn the JSON-text ``tools`` and ``tool_calls`` of a row written without the ``Json``
    feature back into objects (a no-op on rows loaded with ``Json``). For ``datasets`` < 4.7:
    ``ds.with_transform(mixer.formats.decode_json)``-style use on single rows, or call it per row."""
    out = dict(example)
    for key, value in example.items():
        if key in _JSON_KEYS and isinstance(value, str):
            out[key] = json.loads(value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out[key] = [decode_json(v) for v in value]
    return out
