"""Canonical Parquet shards: row groups cut from a larger frame hold exactly their rows."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from mixer import writers


def _rows(n: int) -> pl.DataFrame:
    return pl.DataFrame({
        "id": [f"r{i}" for i in range(n)],
        "messages": [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a" * (i % 7)}]
                     for i in range(n)],
        "tools": [[f"t{i}"] * (i % 3) for i in range(n)],
        "n_tokens": pl.Series(range(n), dtype=pl.UInt32),
    })


def test_a_shard_cut_from_a_larger_frame_writes_its_rows_in_row_groups_the_same_bytes_as_fresh_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers, "ROW_GROUP", 3)
    whole = _rows(40)
    part = whole.slice(11, 10)  # a slice of list columns shares its parent's child arrays
    cut = writers.write_shard(part, tmp_path / "cut", "train", 0, 1, "parquet")
    rebuilt = pl.DataFrame(part.to_dicts(), schema=part.schema)  # the same rows in arrays of their own
    fresh = writers.write_shard(rebuilt, tmp_path / "fresh", "train", 0, 1, "parquet")
    read = pq.ParquetFile(tmp_path / "cut" / cut.path)
    assert [read.metadata.row_group(i).num_rows for i in range(read.num_row_groups)] == [3, 3, 3, 1]
    assert pl.read_parquet(tmp_path / "cut" / cut.path).equals(part)
    assert cut.sha256 == fresh.sha256 and cut.rows == 10


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_shards_written_side_by_side_come_back_in_order_with_the_bytes_of_one_at_a_time(tmp_path: Path, fmt: str) -> None:
    splits = {"train": _rows(50), "validation": _rows(7)}
    together = writers.write_splits(splits, tmp_path / "together", fmt, shard_rows=10)
    one_by_one = [writers.write_shard(frame.slice(offset, length), tmp_path / "alone", split, i, count, fmt)
                  for split, frame in splits.items()
                  for count in [len(writers.shard_plan(frame.height, 10))]
                  for i, (offset, length) in enumerate(writers.shard_plan(frame.height, 10))]
    assert [f.as_dict() for f in together] == [f.as_dict() for f in one_by_one]
    assert [f.path for f in together][:2] == [f"data/train-00000-of-00005.{fmt}", f"data/train-00001-of-00005.{fmt}"]


def test_trainer_rows_are_tabled_as_datasets_tables_them_and_load_back_as_the_same_objects(tmp_path: Path) -> None:
    import datasets

    from mixer import formats
    from test_formats import canonical, heterogeneous_tools_source

    fmt = formats.FORMATS["trl"]
    frame = canonical(heterogeneous_tools_source(tmp_path))
    rows = formats.export(frame, fmt).rows
    assert any(m["tool_calls"] for r in rows for m in r["messages"])  # specs that differ, and a tool call
    features = fmt.features()
    ours = writers._arrow_table(rows, features)
    assert ours.equals(datasets.Dataset.from_list(rows, features=features).data.table)
    assert ours.schema.metadata == features.arrow_schema.metadata  # the features travel with the file
    # the same rows with Json values as objects (the shape before): datasets' own path, the same objects back
    as_objects = [{"messages": [{**m, "tool_calls": [json.loads(c) for c in m["tool_calls"]] if m["tool_calls"] else None}
                                for m in r["messages"]],
                   "tools": [json.loads(t) for t in r["tools"]] if r["tools"] else None} for r in rows]
    written = writers.write_shard(rows, tmp_path / "text", "train", 0, 1, "parquet", features)
    before = writers.write_shard(as_objects, tmp_path / "objects", "train", 0, 1, "parquet", features)
    load = lambda folder, f: datasets.Dataset.from_parquet(str(folder / f.path)).to_list()  # noqa: E731
    assert load(tmp_path / "text", written) == load(tmp_path / "objects", before)
    assert load(tmp_path / "text", written)[0]["tools"][0]["function"]["name"] == "lookup"


def _canonical_rows() -> pl.DataFrame:
    from mixer import schema

    spec = json.dumps({"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}})
    turn = lambda role, content, **kw: {"role": role, "content": content, "tool_calls": None,  # noqa: E731
                                        "tool_call_id": kw.get("tool_call_id"), "name": kw.get("name")}
    base = {"source": "s", "kind": "chat", "system": None, "tools": [], "text": None, "meta": "{}", "n_tokens": 1}
    rows = [
        {**base, "id": "s/0", "messages": [turn("user", "hi"), turn("assistant", "hello")]},
        {**base, "id": "s/1", "system": "Be brief.", "tools": [spec], "messages": [turn("user", "q"), turn("assistant", "a")]},
        {**base, "id": "s/2", "messages": [turn("user", "only a prompt")]},  # refused: no final answer
        {**base, "id": "s/3", "kind": "document", "text": "a page", "messages": []},  # refused: not a chat
        {**base, "id": "s/4", "system": "", "messages": [turn("user", "x"), turn("tool", "42", tool_call_id="c1", name="f"),
                                                       turn("assistant", "y", name="ignored")]},
    ]
    return pl.DataFrame(rows, schema=schema.SCHEMA)


def test_a_shard_converted_at_once_is_the_table_and_the_rejects_of_converting_row_by_row() -> None:
    import dataclasses

    from mixer import formats

    fmt = formats.FORMATS["trl"]
    frame = _canonical_rows()
    batch = formats.export(frame, fmt)
    one_by_one = formats.export(frame, dataclasses.replace(fmt, convert_frame=None))
    assert batch.table is not None and one_by_one.table is None
    assert batch.table.equals(writers._arrow_table(one_by_one.rows, fmt.features()))
    assert batch.rejects == one_by_one.rejects and [r["id"] for r in batch.rejects] == ["s/2", "s/3"]
    assert len(batch) == 3 and batch.rows[1]["tools"] == one_by_one.rows[1]["tools"]  # rows on demand, the same
    refused = formats.export(frame.filter(pl.col("id").is_in(["s/2", "s/3"])), fmt)  # a shard with nothing to write
    assert refused.table.num_rows == 0 and refused.table.schema.equals(fmt.features().arrow_schema, check_metadata=True)


@pytest.mark.parametrize("name", ["trl", "prompt"])
def test_tool_calls_converted_at_once_are_the_row_converters_call_objects(name: str) -> None:
    """Each stored call written once per distinct text, arguments decoded (compact, not JSON, with
    extra keys, several calls in a turn): the table and rejects of converting row by row."""
    import dataclasses

    from mixer import formats

    stored = [
        '[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\\"city\\":\\"東京\\",\\"n\\":1.50}"}}]',
        '[{"type": "function", "function": {"name": "g", "arguments": "not json"}, "id": "c2", "extra": [1]}, '
        '{"id": "c3", "type": "function", "function": {"arguments": "{}", "name": "h"}}]',
    ]
    frame = _canonical_rows()
    turn = frame.schema["messages"].inner
    calls = frame.head(2).with_columns(id=pl.Series(["s/20", "s/21"]), messages=pl.Series([
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": stored[0]},
         {"role": "tool", "content": "sunny", "tool_call_id": "c1", "name": "f"}, {"role": "assistant", "content": "ok"}],
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": stored[1]},
         {"role": "tool", "content": "1", "tool_call_id": "c2"}, {"role": "user", "content": "and?"},
         {"role": "assistant", "content": "", "tool_calls": stored[0]}]], dtype=pl.List(turn)))
    frame = pl.concat([frame, calls, calls.with_columns(id=pl.Series(["s/22", "s/23"]))])
    fmt = formats.FORMATS[name]
    batch = formats.export(frame, fmt)
    one_by_one = formats.export(frame, dataclasses.replace(fmt, convert_frame=None))
    assert batch.table is not None and batch.rejects == one_by_one.rejects
    assert batch.table.equals(writers._arrow_table(one_by_one.rows, fmt.features()))
    column = "messages" if name == "trl" else "prompt"
    assert any(m["tool_calls"] for r in batch.rows for m in r[column])


def test_json_lines_with_shared_tool_objects_are_exactly_what_json_dumps_writes() -> None:
    spec = {"type": "function", "function": {"name": "météo", "parameters": {"type": "object", "x": [1.5, None]}}}
    rows = [{"messages": [{"role": "user", "content": 'hi \u2028 "q" \\ \n'}], "tools": [spec, spec]},
            {"tools": [spec]}, {"messages": [], "tools": []}, {"tools": [spec], "messages": []},
            {"messages": [1]}, {"a": 1, "tools": ["text", spec]}]
    known: dict = {}
    for row in rows * 2:
        assert writers._json_line(row, known) == json.dumps(row, ensure_ascii=False)


def test_llama_factory_tools_are_the_json_of_the_specs_functions() -> None:
    from mixer.formats import llama_factory

    specs = [{"type": "function", "function": {"name": n, "description": "é \"x\"", "parameters": {"type": "object"}}}
             for n in ("a", "b")]
    row = {"kind": "chat", "system": None, "tools": [json.dumps(s, ensure_ascii=False) for s in specs],
           "messages": [{"role": "user", "content": "q", "tool_calls": None},
                        {"role": "assistant", "content": "a", "tool_calls": None}]}
    assert llama_factory.convert(row)["tools"] == json.dumps([s["function"] for s in specs], ensure_ascii=False)


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_trainer_rows_are_written_in_shard_order_with_their_lengths(tmp_path: Path, suffix: str) -> None:
    import pyarrow as pa

    rows = [{"text": f"row {i}"} for i in range(10)]
    for part in (rows, pa.Table.from_pylist(rows)):
        files = writers.write_rows({"train": part, "validation": part[:2]}, {"train": [4, 3, 3], "validation": [2]},
                                   tmp_path / type(part).__name__, suffix)
        assert [(f.split, f.rows) for f in files] == [("train", 4), ("train", 3), ("train", 3), ("validation", 2)]
        third = tmp_path / type(part).__name__ / files[2].path
        got = (pl.read_parquet(third) if suffix == "parquet" else pl.read_ndjson(third))["text"].to_list()
        assert got == ["row 7", "row 8", "row 9"]


def _openai_rows() -> pl.DataFrame:
    bad_name = json.dumps({"type": "function", "function": {"name": "get weather", "parameters": {"type": "object"}}})
    odd = 'tab\t quote" back\\ \x1f \u2028 東京 🙂'
    rows = _canonical_rows().filter(~pl.col("id").is_in(["s/4"]))  # s/4 has a tool turn
    more = rows.head(2).with_columns(id=pl.Series(["s/5", "s/6"]), system=pl.Series([odd, "   "]),
                                     tools=pl.Series([[bad_name], []], dtype=pl.List(pl.String)))
    return pl.concat([rows, more.with_columns(pl.col("messages").list.eval(pl.element().struct.with_fields(
        content=pl.element().struct.field("content") + pl.lit(" " + odd))))])


def _tool_call_row(frame: pl.DataFrame) -> pl.DataFrame:
    """A valid chat with a tool call and its result (every format's row converter takes it)."""
    call = '[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]'
    turn = lambda role, content, **kw: {"role": role, "content": content, "tool_calls": kw.get("calls"),  # noqa: E731
                                        "tool_call_id": kw.get("call_id"), "name": kw.get("name")}
    return frame.head(1).with_columns(id=pl.lit("s/7"), messages=pl.Series([[
        turn("user", "x"), turn("assistant", "", calls=call), turn("tool", "42", call_id="c1", name="f"),
        turn("assistant", "y")]], dtype=frame.schema["messages"]))


def test_openai_lines_built_at_once_are_the_bytes_and_rejects_of_converting_row_by_row() -> None:
    import dataclasses

    from mixer import formats

    fmt = formats.FORMATS["openai"]
    frame = _openai_rows()
    batch = formats.export(frame, fmt)
    one_by_one = formats.export(frame, dataclasses.replace(fmt, convert_frame=None))
    assert batch.lines is not None
    assert batch.lines.to_list() == [json.dumps(r, ensure_ascii=False) for r in one_by_one.rows]
    assert batch.rejects == one_by_one.rejects
    assert {r["id"] for r in batch.rejects} == {"s/2", "s/3", "s/5", "s/6"}  # no answer, document, tool name, blank system
    assert batch.rows == one_by_one.rows  # rows on demand, the same


def test_openai_shards_with_tool_turns_or_renamed_tools_go_row_by_row() -> None:
    from mixer import formats

    fmt = formats.FORMATS["openai"]
    frame = _canonical_rows()  # s/4: a tool result without a call, refused either way
    assert formats.export(frame, fmt).lines is not None
    exported = formats.export(pl.concat([frame, _tool_call_row(frame)]), fmt)
    assert exported.lines is None and "s/7" not in {r["id"] for r in exported.rejects}  # a valid call: row by row
    renamed = formats.export(_openai_rows(), fmt, rename_tools=True)
    assert renamed.lines is None and [r["id"] for r in renamed.renamed] == ["s/5"]


def test_llama_factory_lines_built_at_once_are_the_bytes_and_rejects_of_converting_row_by_row() -> None:
    import dataclasses

    from mixer import formats

    fmt = formats.FORMATS["llama-factory"]
    frame = _openai_rows()  # escapes in system and content, a document, a prompt-only row, a dotted tool name
    two_users = frame.head(1).with_columns(id=pl.lit("s/8"), messages=pl.col("messages").list.eval(
        pl.element().struct.with_fields(role=pl.lit("user"))).list.concat(pl.col("messages").list.slice(1)))
    frame = pl.concat([frame, two_users])
    batch = formats.export(frame, fmt)
    one_by_one = formats.export(frame, dataclasses.replace(fmt, convert_frame=None))
    assert batch.lines is not None
    assert batch.lines.to_list() == [json.dumps(r, ensure_ascii=False) for r in one_by_one.rows]
    assert batch.rejects == one_by_one.rejects and {r["id"] for r in batch.rejects} == {"s/2", "s/3", "s/8"}
    # a tool call and its result are the row converter's: the shard goes row by row
    exported = formats.export(pl.concat([frame, _tool_call_row(frame)]), fmt)
    assert exported.lines is None and "s/7" not in {r["id"] for r in exported.rejects}


def test_threaded_writes_are_over_when_an_interrupt_comes_out() -> None:
    """Ctrl-C or a kill lands in the main thread while shards are written: when it comes out of
    the writer, no thread is still writing (the caller removes the staging folder next)."""
    import _thread
    import threading
    import time

    log: list[tuple[str, int]] = []
    lock = threading.Lock()

    def write(i: int) -> int:
        with lock:
            log.append(("start", i))
        if i == 1:
            _thread.interrupt_main()
        time.sleep(0.003)
        with lock:
            log.append(("end", i))
        return i

    for _ in range(5):
        log.clear()
        with pytest.raises(KeyboardInterrupt):
            writers._in_threads(write, list(range(300)), 2)
        seen = list(log)
        time.sleep(0.05)
        assert log == seen  # nothing started or finished after the interrupt came out
        assert len([e for e in seen if e[0] == "start"]) < 300  # the jobs not started were cancelled


def _built_both_ways(tmp_path: Path, top: str, output: str) -> tuple[Path, dict[str, Path]]:
    """A recipe over 30 chats (``top`` and ``[output]`` lines added), built in memory and streaming."""
    from conftest import chats, write_jsonl, write_recipe
    from mixer import pipeline

    write_jsonl(tmp_path / "a.jsonl", chats(30))
    recipe = write_recipe(tmp_path / "r.toml", f'unit = "examples"\n{top}[sources.a]\npath = "a.jsonl"\nweight = 1\n'
                                               f'[output]\n{output}')
    outs = {executor: tmp_path / f"out-{executor}" for executor in ("memory", "stream")}
    for executor, out in outs.items():
        pipeline.build_all(recipe, out=out, executor=executor)
    return recipe, outs


def test_a_llama_factory_split_of_several_shards_is_a_folder_that_dataset_info_names(tmp_path: Path) -> None:
    """dataset_info.json names one path a split: with several shards, that is their folder
    (naming one file trained LLaMA-Factory on that shard alone)."""
    import datasets

    from conftest import write_recipe
    from mixer import pipeline

    recipe, outs = _built_both_ways(tmp_path, 'total = 30\n', 'format = "llama-factory"\nshard_rows = 10\n')
    written = {}
    for executor, out in outs.items():
        info = json.loads((out / "dataset_info.json").read_text())
        assert [e["file_name"] for e in info.values()] == ["data/train"]
        files = sorted(p.relative_to(out).as_posix() for p in (out / "data").rglob("*") if p.is_file())
        assert files == [f"data/train/train-0000{i}-of-00003.jsonl" for i in range(3)]
        manifest = json.loads((out / "manifest.json").read_text())
        assert sorted(f["path"] for f in manifest["outputs"]) == files
        written[executor] = [(out / f).read_bytes() for f in files]
        assert datasets.load_dataset(str(out), split="train").num_rows == 30
        again = pipeline.build_all(write_recipe(tmp_path / f"again-{executor}.toml",  # mixer reads it back as a source
                                                f'unit = "examples"\ntotal = 30\n[sources.a]\npath = "{out}"\n'
                                                'format = "sharegpt"\nweight = 1\n'), out=tmp_path / f"again-{executor}")
        assert again and pl.read_parquet(tmp_path / f"again-{executor}" / "data" / "*.parquet").height == 30
    assert written["memory"] == written["stream"]
    converted, _ = pipeline.convert(tmp_path / "a.jsonl", tmp_path / "converted", "llama-factory", shard_rows=10)
    info = json.loads((tmp_path / "converted" / "dataset_info.json").read_text())
    assert [e["file_name"] for e in info.values()] == ["data/train"]
    assert len(list((tmp_path / "converted" / "data" / "train").iterdir())) == 3


def _prompt_rows() -> pl.DataFrame:
    """Rows for the prompt and torchtune converters: tools with and without a system prompt, an
    empty system prompt, escapes, a prompt-only row, a tool turn, a row that is only an answer."""
    spec = lambda name: json.dumps({"type": "function", "function": {  # noqa: E731
        "name": name, "description": 'météo "x" \\ \u2028', "parameters": {"type": "object"}}}, ensure_ascii=False)
    frame = _openai_rows()
    turn = frame.schema["messages"].inner
    extra = frame.head(3).with_columns(
        id=pl.Series(["s/9", "s/10", "s/11"]), system=pl.Series([None, "", "sys"]),
        tools=pl.Series([[spec("a"), spec("b")], [spec("a")], []], dtype=pl.List(pl.String)),
        messages=pl.Series([[{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                             {"role": "user", "content": "q2"}],
                            [{"role": "assistant", "content": "only an answer"}],
                            [{"role": "user", "content": "x"}, {"role": "tool", "content": "42", "tool_call_id": "c1",
                                                                 "name": "f"}, {"role": "assistant", "content": "y"}]],
                           dtype=pl.List(turn)))
    return pl.concat([frame, extra, _canonical_rows().filter(pl.col("id") == "s/4")])


@pytest.mark.parametrize("name", ["openai", "llama-factory"])
def test_tool_specs_with_escapes_are_written_at_once_as_row_by_row(name: str) -> None:
    """Each spec's JSON is escaped once and joined: the same bytes as escaping each row's whole text."""
    import dataclasses

    from mixer import formats

    fmt = formats.FORMATS[name]
    frame = _prompt_rows()
    with_tools = frame.filter(pl.col("id") == "s/9").with_columns(  # a chat both formats take, with escaped specs
        id=pl.lit("s/12"), system=pl.lit("S"), messages=pl.col("messages").list.head(2))
    frame = pl.concat([frame, with_tools])
    batch = formats.export(frame, fmt)
    one_by_one = formats.export(frame, dataclasses.replace(fmt, convert_frame=None))
    assert batch.lines is not None and batch.rejects == one_by_one.rejects
    assert batch.lines.to_list() == [json.dumps(r, ensure_ascii=False) for r in one_by_one.rows]
    quote = 'météo \\"x\\"' if name == "openai" else 'météo \\\\\\"x\\\\\\"'  # in JSON; in JSON text in JSON
    assert any(quote in line for line in batch.lines)


@pytest.mark.parametrize("name", ["prompt", "torchtune"])
def test_prompt_and_torchtune_shards_converted_at_once_are_what_converting_row_by_row_gives(name: str) -> None:
    """The tools block folded into the system turn, byte for byte, and the same rows refused."""
    import dataclasses

    from mixer import formats

    fmt = formats.FORMATS[name]
    frame = _prompt_rows()
    batch = formats.export(frame, fmt)
    one_by_one = formats.export(frame, dataclasses.replace(fmt, convert_frame=None))
    assert batch.rejects == one_by_one.rejects and len(batch) == len(one_by_one) >= 5
    if name == "prompt":
        assert batch.table is not None
        assert batch.table.equals(writers._arrow_table(one_by_one.rows, fmt.features()))
        assert {r["id"] for r in batch.rejects} == {"s/3", "s/10"}  # a document, no user turn before the answer
    else:
        assert batch.lines is not None
        assert batch.lines.to_list() == [json.dumps(r, ensure_ascii=False) for r in one_by_one.rows]
        assert {r["id"] for r in batch.rejects} == {"s/2", "s/3", "s/4", "s/9", "s/11"}
    assert any("</tools>" in m["content"] for r in batch.rows for m in r.get("prompt", r.get("messages", [])))
    nothing = formats.export(frame.filter(pl.col("id") == "s/3"), fmt)  # a shard of documents alone: all refused
    assert len(nothing) == 0 and len(nothing.rejects) == 1
    if name == "prompt":
        assert nothing.table.schema.equals(fmt.features().arrow_schema, check_metadata=True)
    exported = formats.export(pl.concat([frame, _tool_call_row(frame)]), fmt)
    if name == "prompt":  # a tool call: converted at once too
        assert exported.table is not None and "s/7" not in {r["id"] for r in exported.rejects}
    else:  # torchtune has no tool turns: refused with its reason, the rest at once
        assert exported.lines is not None and "s/7" in {r["id"] for r in exported.rejects}


def test_batch_lines_are_written_byte_for_byte_as_python_would_write_them(tmp_path: Path) -> None:
    """Written by Polars' CSV writer: nothing quoted or escaped (commas, quotes, separators of
    other CSV dialects), nothing added but the newline, also for a slice of a column."""
    import io

    lines = pl.Series(["{}", '{"a": "東京 🙂 \u2028"}', "", "x" * 70_000, "é", '{"q": "a, \\"b\\"; c"}',
                       '"quoted"', "tab\there", " padded ", "\r"] * 3)
    fh = io.BytesIO()
    writers._write_lines(lines.slice(1), fh)
    assert fh.getvalue() == "".join(line + "\n" for line in lines.slice(1)).encode("utf-8")
    with pytest.raises(AssertionError, match="null line"):
        writers._write_lines(pl.Series(["a", None]), io.BytesIO())
    with pytest.raises(AssertionError, match="newline"):
        writers._write_lines(pl.Series(["a", "b\nc"]), io.BytesIO())


def test_an_openai_split_of_several_shards_is_joined_into_the_one_file_a_fine_tuning_job_takes(tmp_path: Path) -> None:
    """A job takes one training_file: shards would leave the user to upload one and train on it alone."""
    import hashlib

    import datasets

    from mixer import pipeline

    recipe, outs = _built_both_ways(tmp_path, 'total = 24\nvalidation = 0.2\n', 'format = "openai"\nshard_rows = 4\n')
    written = {}
    for executor, out in outs.items():
        files = sorted(p.relative_to(out).as_posix() for p in (out / "data").rglob("*") if p.is_file())
        assert files == ["data/train-00000-of-00001.jsonl", "data/validation-00000-of-00001.jsonl"]
        manifest = json.loads((out / "manifest.json").read_text())
        for entry in manifest["outputs"]:
            data = (out / entry["path"]).read_bytes()
            assert entry["rows"] == data.count(b"\n") == manifest["export"]["rows"][entry["split"]]
            assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
        assert datasets.load_dataset(str(out), split="train").num_rows == manifest["export"]["rows"]["train"] > 4
        written[executor] = [(out / f).read_bytes() for f in files]
    assert written["memory"] == written["stream"]
    four = pipeline.build_all(recipe, out=tmp_path / "canonical", overrides=['output.format="canonical"'])
    assert four and len(list((tmp_path / "canonical" / "data").glob("train-*.parquet"))) > 1  # other formats keep shards
    pipeline.convert(tmp_path / "a.jsonl", tmp_path / "converted", "openai", shard_rows=4)
    assert [p.name for p in (tmp_path / "converted" / "data").iterdir()] == ["train-00000-of-00001.jsonl"]


def test_text_with_the_built_in_chatml_is_rendered_at_once_as_jinja_renders_it_row_by_row(tmp_path: Path) -> None:
    """Documents as they are, chats framed with the tools block folded in, the same rejects; any
    other template goes through Jinja row by row."""
    import dataclasses

    from mixer import formats
    from mixer.formats import text

    fmt = formats.FORMATS["text"]
    quoted = json.dumps({"type": "function", "function": {"name": 'say"hi', "parameters": {"type": "object"}}})
    frame = pl.concat([_prompt_rows(), _prompt_rows().filter(pl.col("id") == "s/1").with_columns(
        id=pl.lit("s/13"), tools=pl.Series([[quoted]], dtype=pl.List(pl.String)))])
    options = formats.options(fmt, type("Output", (), {"rename_tools": False, "chat_template": None})(), tmp_path)
    batch = formats.export(frame, fmt, **options)
    one_by_one = formats.export(frame, dataclasses.replace(fmt, convert_frame=None), **options)
    assert batch.table is not None and batch.rejects == one_by_one.rejects
    assert batch.table.column("text").to_pylist() == [r["text"] for r in one_by_one.rows]
    assert {r["id"] for r in batch.rejects} == {"s/2", "s/9", "s/13"}  # no answer twice; a name its JSON escapes
    assert any("<tools>" in t for t in batch.table.column("text").to_pylist())
    assert "a page" in batch.table.column("text").to_pylist()  # the document, as it is
    other = text.Template(text.CHATML.replace("<|im_end|>", "<|end|>"))
    assert formats.export(frame, fmt, template=other).table is None


def test_trainer_parquet_bytes_depend_on_the_rows_not_on_how_they_are_chunked_or_pieced(tmp_path: Path) -> None:
    """A trainer-format shard's Parquet is the same bytes whether its table is one array, chunked
    (a batch converter's slices, a slice of a whole split's table) or handed over in pieces (a
    streaming export): pyarrow cuts pages where its input arrays are cut, so each row group is
    made contiguous first (a 500k TRL build gave another second shard in memory than streamed)."""
    import hashlib

    import pyarrow as pa

    rows = pa.table({"messages": [[{"role": "user", "content": f"question {i} " + "x" * (600 + i % 97)},
                                   {"role": "assistant", "content": "y" * (900 + i % 53)}] for i in range(6000)],
                     "tools": [[f'{{"name": "t{i % 13}"}}'] * (i % 3) for i in range(6000)]})

    def digest(name: str, parts: list) -> str:
        written = writers.write_pieces(parts, tmp_path / name, "train", 0, 1, "parquet")
        return hashlib.sha256((tmp_path / name / written.path).read_bytes()).hexdigest()

    chunked = pa.concat_tables([rows.slice(a, 700) for a in range(0, 6000, 700)])
    assert chunked.column("messages").num_chunks > 1
    want = digest("whole", [rows])
    assert digest("chunked", [chunked]) == want
    assert digest("pieces", [rows.slice(a, 1234) for a in range(0, 6000, 1234)]) == want
    assert pq.ParquetFile(tmp_path / "whole" / "data" / "train-00000-of-00001.parquet").metadata.num_row_groups == 1
