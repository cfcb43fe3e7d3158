"""Token targets hold for what is written, also for upsampled sources whose repeats draw fresh
augmentations; a shortfall says what cleaning removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import chats, write_jsonl, write_recipe
from mixer import pipeline
from mixer.errors import DataError


def recipe(tmp_path: Path, budget: str = "content") -> Path:
    write_jsonl(tmp_path / "small.jsonl", chats(20, "s"))
    write_jsonl(tmp_path / "big.jsonl", chats(2000, "b"))
    return write_recipe(tmp_path / "r.toml", f"""
token_budget = "{budget}"
unit = "tokens"
total = 60000
[sources.small]
path = "small.jsonl"
weight = 0.5
max_epochs = 200
[[sources.small.transforms]]
type = "tools"
p = 0.9
count = [1, 4]
[sources.big]
path = "big.jsonl"
weight = 0.5
""")


@pytest.mark.parametrize("budget", ["rendered", "content", "assistant"])
@pytest.mark.parametrize("executor", ["memory", "stream"])
def test_an_upsampled_augmented_source_meets_its_token_target_within_one_row(tmp_path: Path, executor: str,
                                                                             budget: str) -> None:
    m = pipeline.build(recipe(tmp_path, budget), executor=executor, chunk_rows=7)
    small = m.manifest["sources"]["small"]
    assert small["repeat_factor"] > 2
    frame = m.to_polars()["train"]
    rows = frame.filter(frame["source"] == "small")
    assert int(rows["n_tokens"].sum()) == small["tokens_selected"]  # what is written
    assert abs(small["tokens_selected"] - 30000) <= int(rows["n_tokens"].max())  # within one row
    assert small["token_counts"]["selected"][budget] == small["tokens_selected"]


def test_the_manifest_check_refuses_a_source_more_than_one_row_off_its_target(tmp_path: Path) -> None:
    from mixer import manifest as manifest_mod
    m = pipeline.build(recipe(tmp_path)).manifest
    manifest_mod.check(m)
    small = m["sources"]["small"]
    small["tokens_selected"] = int(small["target"]) + small["largest_row_selected"] + 1
    with pytest.raises(AssertionError, match="more than one row away"):
        manifest_mod.check(m)


def test_a_shortfall_names_what_dedup_removed(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(10, "a") * 3)
    r = write_recipe(tmp_path / "r.toml", 'unit = "examples"\n[sources.a]\npath = "a.jsonl"\nexamples = 25\n')
    with pytest.raises(DataError, match=r"(?s)needs 25 examples but has 10.*of its 30 rows read, 20 were removed "
                                        r"before selection: 20 duplicates"):
        pipeline.build(r)
