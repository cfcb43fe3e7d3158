"""validation = v: the documented rule holds, and every held-out row is accounted for."""

from __future__ import annotations

from pathlib import Path

import datasets
import polars as pl

from conftest import chats, write_jsonl
from mixer import pipeline, recipe as recipe_mod
from mixer.mix import VALIDATION_RULE


def small_source_recipe(tmp_path: Path) -> recipe_mod.Recipe:
    """A large source and a small one at a 3% share (XSTest beside HH, in the issue)."""
    big = write_jsonl(tmp_path / "big.jsonl", chats(2000, "big"))
    small = write_jsonl(tmp_path / "small.jsonl", chats(441, "small"))
    return recipe_mod.from_dict({
        "seed": 3, "unit": "examples", "total": 1000, "validation": 0.02,
        "sources": {"big": {"path": str(big), "weight": 0.97}, "small": {"path": str(small), "weight": 0.03}},
    })


def test_a_small_selected_source_is_never_absent_from_validation(tmp_path: Path) -> None:
    m = pipeline.build(small_source_recipe(tmp_path))
    small = m.manifest["sources"]["small"]
    assert small["split"]["validation"] > 0 and small["rows_selected"] == 30
    # 30 train rows x 0.02/0.98 is under one row: before, none was written
    assert small["validation_rows_selected"] == 1
    val = m.splits["validation"]
    assert val.filter(pl.col("source") == "small").height == 1


def test_every_held_out_row_is_written_or_counted_as_not_written(tmp_path: Path) -> None:
    m = pipeline.build(small_source_recipe(tmp_path))
    assert m.manifest["validation_rule"] == VALIDATION_RULE
    for name, entry in m.manifest["sources"].items():
        held = entry["split"]["validation"]
        assert held == entry["validation_rows_selected"] + entry["validation_rows_not_written"], name
    big = m.manifest["sources"]["big"]
    # the rule: validation/(1 - validation) of the source's train rows
    assert big["validation_rows_selected"] == round(big["rows_selected"] * 0.02 / 0.98)
    assert big["validation_rows_not_written"] > 0
    assert "not written" in m.table()


def test_validation_rows_written_match_the_manifest(tmp_path: Path) -> None:
    m = pipeline.build(small_source_recipe(tmp_path))
    out = m.write(tmp_path / "out")
    loaded = datasets.load_dataset(str(out))
    assert loaded["validation"].num_rows == sum(
        e["validation_rows_selected"] for e in m.manifest["sources"].values()) == m.manifest["totals"]["validation"]["rows"]
