"""A JSON array file (``alpaca_data.json`` and the like) of a batch format is read by the batch
path, item by item as if each were a line; it must give exactly the rows, ids, meta, repairs
and rejections the per-record reader gives, on junk of every batch format, compact or indented."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import EXAMPLES, assert_same_read
from mixer.recipe import from_dict
from mixer.sources import files
from mixer.sources.read import read_source
from test_fast_reader import alpaca_junk, hh_junk, junk_lines, sharegpt_junk

JUNK = {"openai": junk_lines, "sharegpt": sharegpt_junk, "alpaca": alpaca_junk, "hh-rlhf": hh_junk}


def read_both(path: Path, monkeypatch: pytest.MonkeyPatch, **extra: object):
    src = from_dict({"sources": {"s": {"path": str(path), "examples": 1, "on_error": "skip", **extra}}}).sources[0]
    batch = read_source(src)
    with monkeypatch.context() as m:  # no array scan: the whole file through json.loads, then one by one
        m.setattr(files.ArrayScan, "items", lambda self: None)
        one_by_one = read_source(src)
    return batch, one_by_one


def junk_items(fmt: str, seed: int) -> list[object]:
    """The junk lines that are JSON, plus items that are no record, shuffled."""
    items: list[object] = []
    for line in JUNK[fmt](seed):
        try:
            items.append(json.loads(line))
        except ValueError:
            pass
    items += [7, "text", [1, 2], None, {}, {"messages": [], "nested": {"deep": [1.5, None, True]}}]
    random.Random(seed).shuffle(items)
    return items


def utf8(item: object) -> bool:
    try:
        json.dumps(item, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only an escaped file can hold it
        return False
    return True


@pytest.mark.parametrize(("indent", "ascii_only"), [(None, True), (2, True), (1, False)])
@pytest.mark.parametrize("fmt", sorted(JUNK))
def test_json_array_items_read_exactly_as_the_per_record_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               fmt: str, indent: int | None, ascii_only: bool) -> None:
    path = tmp_path / f"{fmt}.json"
    items = [item for item in junk_items(fmt, 3) if ascii_only or utf8(item)]
    path.write_text(json.dumps(items, indent=indent, ensure_ascii=ascii_only), encoding="utf-8")
    batch, one_by_one = read_both(path, monkeypatch, format=fmt)
    assert_same_read(batch, one_by_one)
    report = batch[1]
    assert report.read_paths["batch"] > 30 and report.read_paths["per record"] > 5
    assert report.rejected


def test_items_with_a_lone_surrogate_or_nan_are_judged_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "odd.json"
    ok = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path.write_text("[" + ", ".join([json.dumps(ok), '{"messages": [{"role": "user", "content": "\\ud800"}]}',
                                     '{"messages": [], "score": NaN}', json.dumps(ok)]) + "]", encoding="utf-8")
    batch, one_by_one = read_both(path, monkeypatch, format="openai")
    assert_same_read(batch, one_by_one)
    assert batch[0].height == 2 and batch[1].read_paths["batch"] == 2


@pytest.mark.parametrize("text", ["", "  ", "[]", "[\n]", '{"data": [{"messages": []}]}', "[1, 2,]", "[1] [2]",
                                  '{"messages": []}\n{"messages": []}\n', "[1, 2] x"])
def test_files_that_are_not_one_plain_array_go_to_the_per_record_reader(tmp_path: Path, text: str) -> None:
    """Blank files, objects wrapping the array, JSON Lines named .json and invalid JSON: the
    per-record reader reads them or says what is wrong, as before."""
    path = tmp_path / "f.json"
    path.write_text(text, encoding="utf-8")
    items = files.ArrayScan(path).items()
    if text.strip() in ("[]", "[\n]"):
        assert items is not None and list(items) == []
    else:
        assert items is None


def test_the_example_json_array_reads_the_same_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    path = EXAMPLES / "principled_advice.json"
    batch, one_by_one = read_both(path, monkeypatch)
    assert_same_read(batch, one_by_one)


def test_a_json_array_file_is_decoded_once_for_detection_and_the_batch_path(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Detecting the format takes the first records without decoding the whole file, and the
    batch reader is handed the same scan (it was: json.loads of the whole file, then a scan)."""
    import json

    path = tmp_path / "chats.json"
    path.write_text(json.dumps([{"messages": [{"role": "user", "content": f"q{i}"},
                                              {"role": "assistant", "content": "a"}]} for i in range(50)]),
                    encoding="utf-8")
    scans, loads = [], []
    spans = files._array_spans
    monkeypatch.setattr(files, "_array_spans", lambda p: scans.append(p) or spans(p))
    real_loads = json.loads
    monkeypatch.setattr(files.json, "loads", lambda text, *a, **k: loads.append(len(text)) or real_loads(text, *a, **k))
    rows, report = read_source(from_dict({"sources": {"s": {"path": str(path), "examples": 1}}}).sources[0])
    assert rows.height == 50 and report.read_paths["batch"] == 50
    assert scans == [path] and max(loads) < 200  # one scan; only single items through json.loads
    scan = files.ArrayScan(path)
    assert scan.items() is not None and scan.take() is not None and scan._spans is None  # the last reader frees it
