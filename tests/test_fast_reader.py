"""The batch path for OpenAI-messages JSON Lines gives exactly the rows, ids, meta, repairs and
rejections of the per-record path, on real files and on junk."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_same_read, EXAMPLES, HH, SHARED, needs_shared, write_jsonl
from mixer import pipeline
from mixer.errors import DataError
from mixer.recipe import from_dict
from mixer.sources import fast
from mixer.sources.formats import hh_rlhf
from mixer.sources.read import read_source


def read_both(path: Path, monkeypatch: pytest.MonkeyPatch, on_error: str = "skip", **extra: object):
    src = from_dict({"sources": {"s": {"path": str(path), "examples": 1, "on_error": on_error, **extra}}}).sources[0]
    batch = read_source(src)
    with monkeypatch.context() as m:
        m.setattr(fast, "plain_mask", lambda lines, *a: pl.Series([False] * len(lines)))  # all per record
        one_by_one = read_source(src)
    return batch, one_by_one


assert_same = assert_same_read


def junk_lines(seed: int) -> list[str]:
    rnd = random.Random(seed)
    words = ["hello", "naïve", "東京", "🙂", "a\\nb", "tab\\t", "\\u00e9", "quote \\\" inside", "back\\\\slash",
             "\\u001c", " ", "", "\\u2028", "x" * 50]

    def text() -> str:
        return " ".join(rnd.choice(words) for _ in range(rnd.randint(0, 4)))

    def message() -> str:
        role = rnd.choice(["user", "assistant", "system", "developer", "tool", "function", "robot", None])
        content = rnd.choice([f'"{text()}"', f'"{text()}"', f'"{text()}"', "5", "null", '[{"type": "text", "text": "p"}]'])
        parts = [f'"role": {json.dumps(role)}'] if role is not None or rnd.random() < 0.5 else []
        parts.append(f'"content": {content}')
        if rnd.random() < 0.05:
            parts.append('"name": "n"')
        if rnd.random() < 0.05:
            parts.append('"id": "m1"')
        rnd.shuffle(parts)
        return "{" + ", ".join(parts) + "}"

    lines = []
    for i in range(600):
        kind = rnd.random()
        messages = ", ".join(message() for _ in range(rnd.randint(0, 4)))
        extra = rnd.choice(["", f', "id": "r{i % 50}"', f', "id": {i}', ', "id": null', ', "id": 1.5',
                            ', "meta": {"k": 1}', ', "tools": []', ', "x": NaN'])
        if kind < 0.6:  # the commonest shape: a user turn and an answer
            line = (f'{{"messages": [{{"role": "user", "content": "q {i % 40} {text()}"}}, '
                    f'{{"role": "assistant", "content": "a {i % 40}"}}]{extra}}}')
        elif kind < 0.9:
            line = f'{{"messages": [{messages}]{extra}}}'
        else:
            line = rnd.choice(['{"messages": [', "not json", '{"messages": "x"}', "[1, 2]", '{"messages": []}',
                               '{"messages": [{"role": "user", "content": "a", "content": "b"}]}',
                               '{"messages": [{"role": "user", "content": "\\ud800"}]}', "   "])
        lines.append(line)
    return lines


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_and_per_record_paths_agree_on_junk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    path = tmp_path / "junk.jsonl"
    path.write_text("\ufeff" + "\n".join(junk_lines(seed)) + "\n", encoding="utf-8")
    batch, one_by_one = read_both(path, monkeypatch)
    assert_same(batch, one_by_one)
    assert batch[1].read_paths["batch"] > 100 and batch[1].read_paths["per record"] > 50  # both paths ran


def test_batch_and_per_record_paths_agree_on_the_example_chats(monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same(*read_both(EXAMPLES / "harmless_chats.jsonl", monkeypatch))


@needs_shared
def test_batch_and_per_record_paths_agree_on_real_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = SHARED / "agentic_misalignment" / "rendered_conditions.jsonl.gz"
    assert_same(*read_both(rendered, monkeypatch))
    # the HH slice as OpenAI JSON Lines, the shape most chat sets are published in
    pipeline.convert(HH, tmp_path / "hh", "openai")
    for path in sorted((tmp_path / "hh" / "data").glob("*.jsonl")):
        batch, one_by_one = read_both(path, monkeypatch)
        assert_same(batch, one_by_one)
        assert batch[1].read_paths["batch"] == batch[1].rows_read  # all plain text turns
    with gzip.open(tmp_path / "hh.jsonl.gz", "wb") as fh:
        fh.write((tmp_path / "hh" / "data" / "train-00000-of-00001.jsonl").read_bytes())
    assert_same(*read_both(tmp_path / "hh.jsonl.gz", monkeypatch))


def test_a_bad_line_fails_the_same_way_on_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"messages": [{"role": "user", "content": "q"},
                                                            {"role": "assistant", "content": "a"}]}] * 3
                       + [{"messages": [{"role": "robot", "content": "q"}]}])
    messages = []
    for force_slow in (False, True):
        with monkeypatch.context() as m:
            if force_slow:
                m.setattr(fast, "plain_mask", lambda lines, *a: pl.Series([False] * len(lines)))
            with pytest.raises(DataError) as exc:
                read_source(from_dict({"sources": {"s": {"path": str(path), "examples": 1}}}).sources[0])
            messages.append(str(exc.value))
    assert messages[0] == messages[1] and "a.jsonl:4" in messages[0]


def test_chunks_keep_their_size_and_order_across_paths(tmp_path: Path) -> None:
    lines = [json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]})
             for i in range(30)]
    lines[7] = json.dumps({"messages": [{"role": "user", "content": "q7"}, {"role": "assistant", "content": "a",
                                                                             "tool_calls": []}]})
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    src = from_dict({"sources": {"s": {"path": str(tmp_path / "a.jsonl"), "examples": 1}}}).sources[0]
    from mixer.sources.read import read_chunks

    report, chunks = read_chunks(src, rows=4)
    frames = list(chunks)
    assert [f.height for f in frames] == [4] * 7 + [2]
    origins = [json.loads(m)["origin"] for f in frames for m in f["meta"]]
    assert origins == [f"a.jsonl:{i + 1}" for i in range(30)]
    assert dict(report.read_paths) == {"batch": 29, "per record": 1}


def hh_junk(seed: int) -> list[str]:
    rnd = random.Random(seed)
    turn = ["\n\nHuman: ", "\n\nAssistant: "]
    texts = ["hi", "how do I pick a lock?", "", "  ", "\u001c", "naïve 東京 🙂", "line\nbreak", "Human: nested",
             "\n\n", "quote \" back \\ slash"]
    lines = []
    for i in range(500):
        parts = []
        for k in range(rnd.randint(0, 5)):
            speaker = turn[k % 2] if rnd.random() < 0.8 else rnd.choice(turn)  # some consecutive same-speaker turns
            parts.append(speaker + rnd.choice(texts))
        transcript = rnd.choice(["", "", " ", "preamble"]) + "".join(parts) + rnd.choice(["", "", "\n\nAssistant:", "\n\nAssistant: "])
        record: dict = {"chosen": transcript, "rejected": "\n\nHuman: x\n\nAssistant: y"}
        r = rnd.random()
        if r < 0.05:
            record["chosen"] = 5
        elif r < 0.1:
            del record["chosen"]
        elif r < 0.15:
            record["id"] = rnd.choice([f"hh-{i % 30}", i])
        elif r < 0.18:
            record["chosen"] = transcript + "\u0000"
        lines.append(json.dumps(record, ensure_ascii=rnd.random() < 0.5))
    return lines


@pytest.mark.parametrize("seed", [0, 1])
def test_hh_transcripts_agree_on_both_paths_with_every_repair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             seed: int) -> None:
    path = tmp_path / "hh.jsonl"
    path.write_text("\n".join(hh_junk(seed)) + "\n", encoding="utf-8")
    batch, one_by_one = read_both(path, monkeypatch, format="hh-rlhf")
    assert_same(batch, one_by_one)
    report = batch[1]
    assert report.read_paths["batch"] > 60 and report.read_paths["per record"] > 20
    assert {"merged consecutive turns", "removed empty final turn"} <= set(report.repairs)


@needs_shared
@pytest.mark.parametrize("side", ["chosen", "rejected"])
def test_hh_slice_reads_the_same_on_both_paths(monkeypatch: pytest.MonkeyPatch, side: str) -> None:
    batch, one_by_one = read_both(HH / "test.jsonl.gz", monkeypatch, side=side)
    assert_same(batch, one_by_one)
    assert batch[1].read_paths["batch"] > 0.9 * batch[1].rows_read


def sharegpt_junk(seed: int) -> list[str]:
    rnd = random.Random(seed)
    speakers = ["human", "gpt", "Human", "GPT", "user", "assistant", "system", "System", "chatgpt", "bot", "model",
                "function_call", "observation", "robot", "tool"]
    texts = ["hi", "how do I pick a lock?", "", "  ", "\u001c", "naïve 東京 🙂", "line\nbreak", "quote \" back \\ slash",
             '{"name": "f", "arguments": {}}']
    lines = []
    for i in range(500):
        turns = []
        for k in range(rnd.randint(0, 5)):
            speaker = ["human", "gpt"][k % 2] if rnd.random() < 0.75 else rnd.choice(speakers)
            turn: dict = {"from": speaker, "value": rnd.choice(texts)}
            r = rnd.random()
            if r < 0.03:
                turn["value"] = None
            elif r < 0.05:
                turn = {"role": speaker, "content": "x"}
            elif r < 0.07:
                del turn["from"]
            turns.append(turn)
        record: dict = {"conversations": turns}
        r = rnd.random()
        if r < 0.15:
            record["system"] = rnd.choice(["be brief", "", None, 5])
        elif r < 0.2:
            record["id"] = rnd.choice([f"sg-{i % 30}", i])
        elif r < 0.23:
            record["tools"] = '[{"name": "f", "parameters": {"type": "object"}}]'
        elif r < 0.25:
            record["conversations"] = "not a list"
        lines.append(json.dumps(record, ensure_ascii=rnd.random() < 0.5))
    return lines


def test_the_example_sharegpt_file_reads_the_same_on_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = EXAMPLES / "principled_advice.json"
    records = json.loads(src.read_text())
    path = write_jsonl(tmp_path / "advice.jsonl", records if isinstance(records, list) else [records])
    batch, one_by_one = read_both(path, monkeypatch)
    assert_same(batch, one_by_one)
    assert batch[1].format == "sharegpt" and batch[1].read_paths["batch"] == batch[1].rows_read


def alpaca_junk(seed: int) -> list[str]:
    rnd = random.Random(seed)
    texts = ["hi", "Name a fruit.", "", "  ", "\u001c", "naïve 東京 🙂", "line\nbreak", "quote \" back \\ slash"]
    lines = []
    for i in range(500):
        record: dict = {"instruction": rnd.choice(texts), "output": rnd.choice(texts)}
        r = rnd.random()
        if r < 0.3:
            record["input"] = rnd.choice(texts + [None])
        if rnd.random() < 0.2:
            record["system"] = rnd.choice(["be brief", "", None, 5])
        r = rnd.random()
        if r < 0.05:
            record["output"] = rnd.choice([None, 5, ["a"]])
        elif r < 0.1:
            del record["instruction"]
        elif r < 0.15:
            record["history"] = [["q", "a"]]
        elif r < 0.2:
            record["id"] = rnd.choice([f"al-{i % 30}", i])
        lines.append(json.dumps(record, ensure_ascii=rnd.random() < 0.5))
    return lines


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("fmt", "junk"), [("sharegpt", sharegpt_junk), ("alpaca", alpaca_junk)])
def test_each_batch_format_agrees_with_its_adapter_on_junk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int,
                                                          fmt: str, junk) -> None:
    path = tmp_path / f"{fmt}.jsonl"
    path.write_text("\n".join(junk(seed)) + "\n", encoding="utf-8")
    batch, one_by_one = read_both(path, monkeypatch, format=fmt)
    assert_same(batch, one_by_one)
    report = batch[1]
    assert report.read_paths["batch"] > 60 and report.read_paths["per record"] > 20
    assert report.rejected  # the junk's problems are counted the same way


def endless(closed):
    """0, 1, 2, ... for ever; ``closed`` is set when the generator is closed."""
    try:
        n = 0
        while True:
            yield n
            n += 1
    finally:
        closed.set()


def test_read_ahead_keeps_order_passes_errors_on_and_stops_with_its_reader() -> None:
    """Lines are read one batch ahead in a thread; what the reader sees must be what a plain
    loop gives: every item in order, the producer's error at the item it happened, and a
    reader that stops early leaves no thread reading the file."""
    import threading

    from mixer.sources.read import read_ahead

    assert list(read_ahead(iter(range(1000)))) == list(range(1000))

    def failing():
        yield 1
        yield 2
        raise DataError("f.jsonl: cannot read")

    got = []
    with pytest.raises(DataError, match="cannot read"):
        for item in read_ahead(failing()):
            got.append(item)
    assert got == [1, 2]

    closed = threading.Event()
    reader = read_ahead(endless(closed))
    assert [next(reader) for _ in range(5)] == [0, 1, 2, 3, 4]
    reader.close()
    assert closed.is_set()
    assert not any(t.name == "mixer-read-ahead" for t in threading.enumerate())


def test_ordered_map_gives_results_in_item_order_errors_at_their_item_and_stops_its_source() -> None:
    """Batches decode in threads, two or more at once; what the reader sees must be what a plain
    loop gives: results in item order however long each took, the error of the item that failed
    and none after it, and a reader that stops early closes the item source."""
    import random
    import threading
    import time

    from mixer.sources.read import ordered_map

    def slow(x: int) -> int:
        time.sleep(random.Random(x).random() / 500)  # later items often finish first
        return x * x

    assert list(ordered_map(slow, iter(range(200)), workers=3)) == [x * x for x in range(200)]

    def fails_at_7(x: int) -> int:
        if x == 7:
            raise DataError("batch 7: cannot decode")
        return slow(x)

    got = []
    with pytest.raises(DataError, match="batch 7"):
        for y in ordered_map(fails_at_7, iter(range(20))):
            got.append(y)
    assert got == [x * x for x in range(7)]

    closed = threading.Event()
    mapped = ordered_map(slow, endless(closed))
    assert [next(mapped) for _ in range(5)] == [0, 1, 4, 9, 16]
    mapped.close()
    assert closed.is_set()


def test_identical_copies_across_batches_and_adapter_rows_get_the_same_k_ids(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast, "BATCH_LINES", 7)
    plain = '{"messages": [{"role": "user", "content": "q%d"}, {"role": "assistant", "content": "a"}]}'
    named = '{"messages": [{"role": "user", "content": "q%d", "name": "n"}, {"role": "assistant", "content": "a"}]}'
    lines = [(named if i % 5 == 0 else plain) % (i % 3) for i in range(60)]  # the named ones go per record
    path = tmp_path / "copies.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    batch, one_by_one = read_both(path, monkeypatch)
    assert_same(batch, one_by_one)
    ids = batch[0].get_column("id")
    assert batch[1].read_paths["per record"] == 12 and ids.str.extract(r"\.(\d+)$").cast(pl.Int64).max() >= 15  # one text seen 16+ times across batches


_PIECES = ["\n", "\n\n", "Human", "Assistant", ": ", ":", " ", "x", "\n\nHuman: ", "\n\nAssistant: ", "Hu", "é"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join), min_size=1, max_size=20))
def test_hh_separators_are_marked_exactly_where_the_regex_finds_them(texts: list[str]) -> None:
    frame = pl.DataFrame({"t": texts})
    regex = frame.select(pl.col("t").str.replace_all(hh_rlhf._HH_SPLIT.pattern, "\x00$1\x00")).to_series()
    assert frame.select(fast._marked(pl.col("t"))).to_series().to_list() == regex.to_list()


def test_the_shape_check_takes_lines_whose_turn_keys_are_string_pairs_only() -> None:
    """``plain_mask`` sends a line the batch way only when every turn key has a string value and
    there are as many of one as of the other (any spacing); anything else is the adapter's."""
    plain = ['{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}',
             '{"messages":[{"role":"user","content":"hi \\"role\\": 5"}]}',
             '{"id": "7", "messages": [ {"content" : "a", "role" :\t"user"} ]}']
    refused = ['{"messages": [{"role": "user", "content": ["part"]}]}',
               '{"messages": [{"role": "user", "content": null}]}',
               '{"messages": [{"role": "user"}]}',
               '{"messages": [{"role": 5, "content": "a"}]}',
               '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": {"t": 1}}]}',
               '{"messages": [{"role": "user", "content": "a", "name": "n"}]}']
    assert fast.plain_mask(pl.Series(plain + refused)).to_list() == [True] * len(plain) + [False] * len(refused)
    sharegpt = ['{"conversations": [{"from": "human", "value": "a"}], "system": "s"}',
                '{"conversations": [{"from": "human", "value": "a"}], "system": null}',
                '{"conversations": [{"from": "human", "value": 1}]}']
    assert fast.plain_mask(pl.Series(sharegpt), "sharegpt").to_list() == [True, False, False]
