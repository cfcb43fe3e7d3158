"""Canonical Parquet shards: row groups cut from a larger frame hold exactly their rows."""

from __future__ import annotations

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
