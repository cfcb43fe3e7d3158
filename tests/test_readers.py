"""Readers: every file layout lands in the same canonical rows, with bad records accounted for."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from conftest import chats, write_jsonl
from mixer.errors import DataError
from mixer.recipe import Source
from mixer.sources.read import read_source

RECORDS = chats(5)


def contents(frame: pl.DataFrame) -> list[list[str]]:
    return [[m["content"] for m in ms] for ms in frame.get_column("messages").to_list()]


def read(path: Path | str, **kw) -> tuple[pl.DataFrame, object]:
    return read_source(Source(name="s", path=str(path), **kw))


@pytest.fixture
def expected(tmp_path: Path) -> list[list[str]]:
    frame, _ = read(write_jsonl(tmp_path / "ref.jsonl", RECORDS))
    return contents(frame)


def test_jsonl_gz_reads_like_jsonl(tmp_path: Path, expected) -> None:
    path = tmp_path / "a.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in RECORDS))
    assert contents(read(path)[0]) == expected


def test_json_array_reads_like_jsonl(tmp_path: Path, expected) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(RECORDS))
    assert contents(read(path)[0]) == expected


def test_json_file_that_is_really_jsonl_is_read_line_by_line(tmp_path: Path, expected) -> None:
    path = tmp_path / "a.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    assert contents(read(path)[0]) == expected


def test_parquet_with_nested_messages_reads_like_jsonl(tmp_path: Path, expected) -> None:
    path = tmp_path / "a.parquet"
    pl.DataFrame(RECORDS).write_parquet(path)
    assert contents(read(path)[0]) == expected


def test_csv_with_json_encoded_messages_column(tmp_path: Path, expected) -> None:
    path = tmp_path / "a.csv"
    pl.DataFrame({"messages": [json.dumps(r["messages"]) for r in RECORDS]}).write_csv(path)
    assert contents(read(path)[0]) == expected


def test_glob_and_folder_read_files_in_sorted_order(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d" / "b.jsonl", RECORDS[3:])
    write_jsonl(tmp_path / "d" / "a.jsonl", RECORDS[:3])
    by_glob, _ = read(tmp_path / "d" / "*.jsonl")
    by_folder, report = read(tmp_path / "d")
    assert contents(by_glob) == contents(by_folder) and len(report.inputs) == 2
    assert json.loads(by_glob.get_column("meta")[0])["origin"] == "a.jsonl:1"


def test_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"the glob .* matched no files"):
        read(tmp_path / "*.jsonl")


def test_missing_path_says_where_paths_are_relative_to(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist .*relative to the recipe file"):
        read(tmp_path / "nope.jsonl")


def test_text_files_become_documents(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "one.md").write_text("# One\n\nBody.")
    frame, report = read(tmp_path / "docs", kind="document")
    assert report.format == "document" and frame.get_column("text").to_list() == ["# One\n\nBody."]


def test_save_to_disk_folder_reads_the_chosen_split(tmp_path: Path, expected) -> None:
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(RECORDS),
                               "test": datasets.Dataset.from_list(RECORDS[:1])})
    dd.save_to_disk(str(tmp_path / "saved"))
    assert contents(read(tmp_path / "saved")[0]) == expected
    assert read(tmp_path / "saved", split="test")[0].height == 1
    with pytest.raises(DataError, match=r"no split 'dev' .*has: train, test"):
        read(tmp_path / "saved", split="dev")


def test_hub_source_goes_through_load_dataset(tmp_path: Path, expected) -> None:
    """The hf:// path calls datasets.load_dataset; a local folder stands in for the Hub here."""
    write_jsonl(tmp_path / "repo" / "data" / "train.jsonl", RECORDS)
    frame, report = read("hf://" + str(tmp_path / "repo"))
    assert contents(frame) == expected and report.inputs[0].path.startswith("hf://")


def test_unreachable_hub_dataset_is_a_clear_error() -> None:
    with pytest.raises(DataError, match=r"could not load 'nobody/nothing' from the Hugging Face Hub.*--set"):
        read("hf://nobody/nothing")


def test_bad_line_fails_with_file_and_line_by_default(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n{not json\n")
    with pytest.raises(DataError, match=r"a\.jsonl:2 .*malformed JSON.*on_error = \"skip\""):
        read(path)


def test_skip_counts_every_bad_record_by_reason(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    lines = [json.dumps(r) for r in RECORDS] + ["{oops", '"a string"', json.dumps({"messages": []}),
                                                 json.dumps({"messages": [{"role": "bot", "content": "x"}]})]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"messages": "\xff"}\n')
    frame, report = read(path, on_error="skip")
    assert frame.height == len(RECORDS)
    assert report.rows_read == len(RECORDS) + 5 == frame.height + report.rows_rejected
    assert sorted(report.rejected) == sorted([
        "malformed JSON: Expecting property name enclosed in double quotes",
        "expected a JSON object per line, got str", "no conversation turns",
        "unknown role 'bot' (expected system, user, assistant or tool)",
        "not valid UTF-8 (re-encode the file as UTF-8)"])
    assert {(r.file, r.line) for r in report.rejects} == {("a.jsonl", n) for n in range(6, 11)}


def test_identical_records_get_distinct_stable_ids(tmp_path: Path) -> None:
    frame, _ = read(write_jsonl(tmp_path / "a.jsonl", [RECORDS[0], RECORDS[0], RECORDS[1]]))
    ids = frame.get_column("id").to_list()
    assert ids[1] == ids[0] + ".1" and len(set(ids)) == 3
    again, _ = read(tmp_path / "a.jsonl")
    assert again.get_column("id").to_list() == ids


def test_inputs_are_fingerprinted_while_they_are_read_and_final_when_the_chunks_end(tmp_path: Path) -> None:
    """The files are hashed in a thread beside the read: when the last chunk comes, the report
    names every input with its size and sha256, exactly as hashing the file gives."""
    import hashlib

    from mixer.sources.read import read_chunks

    write_jsonl(tmp_path / "d" / "a.jsonl", chats(7, "a"))
    write_jsonl(tmp_path / "d" / "b.jsonl", chats(5, "b"))
    report, chunks = read_chunks(Source(name="s", path=str(tmp_path / "d")), rows=4)
    frames = list(chunks)
    assert sum(f.height for f in frames) == 12 and len(frames) == 3
    expected = [(str(p), p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
                for p in sorted((tmp_path / "d").glob("*.jsonl"))]
    assert [(f.path, f.bytes, f.sha256) for f in report.inputs] == expected


def test_an_input_that_cannot_be_hashed_fails_the_read(tmp_path: Path, monkeypatch) -> None:
    """Hashing runs beside the read; its error still ends the read, where the report is made final."""
    from mixer.sources import files
    from mixer.sources.read import read_chunks

    write_jsonl(tmp_path / "a.jsonl", chats(3, "a"))

    def broken(path: Path) -> files.InputFile:
        raise PermissionError(f"{path}: permission denied")

    monkeypatch.setattr(files, "fingerprint", broken)
    _, chunks = read_chunks(Source(name="s", path=str(tmp_path / "a.jsonl")), rows=2)
    with pytest.raises(PermissionError, match="permission denied"):
        list(chunks)
