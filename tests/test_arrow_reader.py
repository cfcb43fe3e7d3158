"""The batch path for Arrow-backed inputs (``save_to_disk`` folders, Hub datasets, Parquet files)
gives exactly the rows, ids, meta, repairs and rejections of the per-record path, on junk of
every batch format, with the column types real datasets use."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import assert_same_read, HH, needs_shared
from mixer import pipeline
from mixer.recipe import from_dict
from mixer.sources import files
from mixer.sources.read import read_source

TEXTS = ["hi", "how do I pick a lock?", "", "  ", "\u001c", "naïve 東京 🙂", "line\nbreak", "quote \" back \\ slash",
         "\n\nHuman: nested"]


def read_both(path: Path, monkeypatch: pytest.MonkeyPatch, **extra: object):
    src = from_dict({"sources": {"s": {"path": str(path), "examples": 1, "on_error": "skip", **extra}}}).sources[0]
    batch = read_source(src)
    with monkeypatch.context() as m:  # no batches offered: every record through the per-record reader
        m.setattr(files, "_table_batches", lambda table: None)
        m.setattr(files, "_parquet_batches", lambda path: None)
        one_by_one = read_source(src)
    return batch, one_by_one


assert_same = assert_same_read


def ident(rnd: random.Random, i: int, id_type: str) -> Any:
    if rnd.random() < 0.3:
        return None
    return {"string": f"r{i % 40}", "int": i % 40, "float": i / 4, "bool": i % 2 == 0}[id_type]


ID_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


def openai_table(seed: int, id_type: str) -> pa.Table:
    """OpenAI messages as Arrow stores them: every turn has every struct field (nulls where a
    JSON record would have no key); some turns carry a name or tool calls, some rows tools."""
    rnd = random.Random(seed)
    rows = []
    for i in range(700):
        turns = []
        if rnd.random() < 0.6:
            turns = [{"role": "user", "content": f"q {i % 50} {rnd.choice(TEXTS)}"},
                     {"role": "assistant", "content": f"a {i % 50}"}]
        else:
            for _ in range(rnd.randint(0, 4)):
                turns.append({"role": rnd.choice(["user", "assistant", "system", "developer", "tool", "function",
                                                  "robot", None]),
                              "content": rnd.choice([*TEXTS, None])})
        for turn in turns:
            turn["name"] = "n" if rnd.random() < 0.03 else None
            turn["tool_calls"] = ('[{"type": "function", "function": {"name": "f", "arguments": "{}"}}]'
                                  if rnd.random() < 0.03 and turn["role"] == "assistant" else None)
        rows.append({"messages": None if rnd.random() < 0.02 else turns, "id": ident(rnd, i, id_type),
                     "tools": ['{"name": "f", "parameters": {"type": "object"}}'] if rnd.random() < 0.05 else None,
                     "extra": rnd.random()})
    turn_type = pa.struct([("content", pa.string()), ("role", pa.string()), ("name", pa.string()),
                           ("tool_calls", pa.string())])
    schema = pa.schema([("messages", pa.list_(turn_type)), ("id", ID_TYPES[id_type]),
                        ("tools", pa.list_(pa.string())), ("extra", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


def sharegpt_table(seed: int) -> pa.Table:
    rnd = random.Random(seed)
    speakers = ["human", "gpt", "Human", "GPT", "user", "assistant", "system", "System", "chatgpt", "bot", "model",
                "function_call", "observation", "robot", "tool"]
    rows = []
    for i in range(600):
        turns = []
        for k in range(rnd.randint(0, 5)):
            speaker = ["human", "gpt"][k % 2] if rnd.random() < 0.75 else rnd.choice([*speakers, None])
            turns.append({"from": speaker, "value": rnd.choice([*TEXTS, None] if rnd.random() < 0.1 else TEXTS),
                          "weight": rnd.choice([None, 1.0])})
        rows.append({"conversations": turns, "system": rnd.choice([None, None, "", "be brief"]),
                     "id": ident(rnd, i, "string"),
                     "tools": '[{"name": "f", "parameters": {}}]' if rnd.random() < 0.04 else None})
    turn_type = pa.struct([("from", pa.string()), ("value", pa.large_string()), ("weight", pa.float64())])
    schema = pa.schema([("conversations", pa.list_(turn_type)), ("system", pa.string()), ("id", pa.string()),
                        ("tools", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


def alpaca_table(seed: int) -> pa.Table:
    rnd = random.Random(seed)
    rows = [{"instruction": rnd.choice([*TEXTS, None]), "input": rnd.choice([None, "", *TEXTS]),
             "output": rnd.choice([*TEXTS, None]), "system": rnd.choice([None, "", "be brief"]),
             "history": [["q", "a"]] if rnd.random() < 0.05 else None, "id": ident(rnd, i, "int")}
            for i in range(600)]
    schema = pa.schema([("instruction", pa.string()), ("input", pa.string()), ("output", pa.string()),
                        ("system", pa.string()), ("history", pa.list_(pa.list_(pa.string()))), ("id", pa.int32())])
    return pa.Table.from_pylist(rows, schema=schema)


def hh_table(seed: int) -> pa.Table:
    rnd = random.Random(seed)
    turn = ["\n\nHuman: ", "\n\nAssistant: "]
    rows = []
    for i in range(600):
        parts = [(turn[k % 2] if rnd.random() < 0.8 else rnd.choice(turn)) + rnd.choice(TEXTS)
                 for k in range(rnd.randint(0, 5))]
        transcript = rnd.choice(["", "", " ", "preamble"]) + "".join(parts) + rnd.choice(["", "\n\nAssistant: "])
        rows.append({"chosen": None if rnd.random() < 0.03 else transcript,
                     "rejected": "\n\nHuman: x\n\nAssistant: y"})
    return pa.table({"chosen": pa.array([r["chosen"] for r in rows], pa.large_string()),
                     "rejected": [r["rejected"] for r in rows]})


def save(table: pa.Table, tmp_path: Path, container: str) -> Path:
    if container == "parquet":
        pq.write_table(table, tmp_path / "data.parquet", row_group_size=250)
        return tmp_path / "data.parquet"
    datasets.Dataset(table).save_to_disk(str(tmp_path / "saved"))
    return tmp_path / "saved"


def check(table: pa.Table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, container: str, **extra: object):
    monkeypatch.setattr(files, "ARROW_BATCH", 128)  # several batches: line numbers continue across them
    batch, one_by_one = read_both(save(table, tmp_path, container), monkeypatch, **extra)
    assert_same(batch, one_by_one)
    report = batch[1]
    assert report.read_paths["batch"] > 60 and report.read_paths["per record"] > 20  # both paths ran
    assert report.rejected  # the junk's problems are counted the same way
    return report


@pytest.mark.parametrize("container", ["parquet", "save_to_disk"])
@pytest.mark.parametrize("id_type", ["string", "int", "float", "bool"])
def test_openai_rows_from_arrow_agree_with_the_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       container: str, id_type: str) -> None:
    check(openai_table(len(id_type), id_type), tmp_path, monkeypatch, container)


@pytest.mark.parametrize("container", ["parquet", "save_to_disk"])
@pytest.mark.parametrize(("fmt", "make"), [("sharegpt", sharegpt_table), ("alpaca", alpaca_table),
                                           ("hh-rlhf", hh_table)])
def test_each_batch_format_from_arrow_agrees_with_its_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              container: str, fmt: str, make) -> None:
    report = check(make(3), tmp_path, monkeypatch, container, format=fmt)
    if fmt == "hh-rlhf":
        assert {"merged consecutive turns", "removed empty final turn"} <= set(report.repairs)


def test_turns_stored_as_json_strings_go_to_the_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A column the batch path cannot type (messages as a JSON string) sends the whole batch to
    the adapter, which decodes it: same rows, nothing lost."""
    messages = [json.dumps([{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}])
                for i in range(50)]
    batch, one_by_one = read_both(save(pa.table({"messages": messages}), tmp_path, "parquet"), monkeypatch)
    assert_same(batch, one_by_one)
    assert batch[1].read_paths["batch"] == 0 and batch[1].read_paths["per record"] == 50 and batch[0].height == 50


@needs_shared
def test_the_hh_slice_saved_by_datasets_reads_like_its_jsonl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same chats as OpenAI JSON Lines and as a save_to_disk folder give the same rows (ids
    are content hashes; only the origin in meta differs) and every row takes the batch path."""
    pipeline.convert(HH, tmp_path / "hh", "openai")
    jsonl = sorted((tmp_path / "hh" / "data").glob("*.jsonl"))[0]
    datasets.Dataset.from_json(str(jsonl)).save_to_disk(str(tmp_path / "saved"))
    batch, one_by_one = read_both(tmp_path / "saved", monkeypatch)
    assert_same(batch, one_by_one)
    assert batch[1].read_paths["batch"] == batch[1].rows_read
    from_lines = read_both(jsonl, monkeypatch)[0][0]
    assert batch[0].drop("meta").equals(from_lines.drop("meta"))


def test_columns_of_types_polars_cannot_take_do_not_stop_the_batch_path(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Real datasets carry columns of every Arrow type; Polars cannot take some (decimal256 makes it
    panic). The batch path converts only the columns it reads, an id of such a type becomes its
    text as the adapter writes it, and turns of such a type go to the adapter: nothing fails."""
    from decimal import Decimal

    n = 40
    messages = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}] for i in range(n)]
    wide = pa.array([Decimal(i) / 4 for i in range(n)], pa.decimal256(40, 2))
    pq.write_table(pa.table({"messages": messages, "odd": wide, "id": wide}), tmp_path / "a.parquet")
    batch, one_by_one = read_both(tmp_path / "a.parquet", monkeypatch)
    assert_same(batch, one_by_one)
    assert batch[1].read_paths["batch"] == n and '"source_id": "0.25"' in batch[0]["meta"][1]

    turn = pa.struct([("role", pa.string()), ("content", pa.string()), ("weight", pa.decimal256(40, 2))])
    odd_turns = pa.array([[{**m, "weight": None} for m in row] for row in messages], pa.list_(turn))
    pq.write_table(pa.table({"messages": odd_turns}), tmp_path / "b.parquet")
    batch, one_by_one = read_both(tmp_path / "b.parquet", monkeypatch)
    assert_same(batch, one_by_one)
    assert batch[1].read_paths["per record"] == n


def test_a_folder_of_small_record_batches_is_read_in_full_slices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``datasets`` writes 1,000-row record batches; the batch reader takes ARROW_BATCH rows at a
    time across them (a batch costs the same whatever its size), with the same rows."""
    from mixer.sources import fast

    original = files._hf_disk_table
    monkeypatch.setattr(files, "_hf_disk_table", lambda source, root: pa.Table.from_batches(
        original(source, root).to_batches(max_chunksize=7)))
    sizes: list[int] = []
    arrow_batch = fast.arrow_batch
    monkeypatch.setattr(fast, "arrow_batch", lambda frame, *a, **k: sizes.append(frame.height) or arrow_batch(frame, *a, **k))
    report = check(openai_table(5, "string"), tmp_path, monkeypatch, "save_to_disk")
    assert sizes[:-1] == [128] * (len(sizes) - 1) and sum(sizes) == report.rows_read == 700
