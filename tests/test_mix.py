"""Budgets and selection: shares met, nested, independent of other sources, caps enforced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
import polars as pl
import pytest

from conftest import HH, chats, needs_shared, write_jsonl
from mixer import pipeline, recipe as recipe_mod
from mixer.errors import DataError


def make(tmp_path: Path, sizes: dict[str, int]) -> dict[str, str]:
    return {name: str(write_jsonl(tmp_path / f"{name}.jsonl", chats(n, prefix=name))) for name, n in sizes.items()}


def build(paths: dict[str, str], sources: dict[str, dict], **top) -> pipeline.Mixture:
    table = {"seed": 7, **top, "sources": {n: {"path": paths[n], **spec} for n, spec in sources.items()}}
    return pipeline.build(recipe_mod.from_dict(table))


def ids(m: pipeline.Mixture, source: str | None = None) -> set[str]:
    frame = m.splits["train"]
    if source:
        frame = frame.filter(pl.col("source") == source)
    return set(frame.get_column("id").to_list())


def test_realized_token_shares_match_targets_within_a_point(tmp_path: Path) -> None:
    paths = make(tmp_path, {"a": 400, "b": 300, "c": 200})
    m = build(paths, {"a": {"weight": 0.5}, "b": {"weight": 0.3}, "c": {"weight": 0.2}}, total=6000)
    for name, want in (("a", 0.5), ("b", 0.3), ("c", 0.2)):
        entry = m.manifest["sources"][name]
        assert entry["target_share"] == pytest.approx(want)
        one_row = entry["tokens_selected"] / max(entry["rows_selected"], 1) / 6000
        assert abs(entry["realized_share"] - want) <= max(0.01, one_row)
    assert m.manifest["totals"]["train"]["tokens"] == pytest.approx(6000, rel=0.01)


def test_smaller_budget_selects_a_subset_of_a_larger_one(tmp_path: Path) -> None:
    paths = make(tmp_path, {"a": 500, "b": 500})
    spec = {"a": {"weight": 0.6}, "b": {"weight": 0.4}}
    small, large = build(paths, spec, total=3000), build(paths, spec, total=6000)
    assert ids(small) < ids(large)


def test_a_sources_selection_does_not_depend_on_other_sources(tmp_path: Path) -> None:
    paths = make(tmp_path, {"a": 300, "b": 300, "c": 300})
    alone = build(paths, {"a": {"examples": 120}}, unit="examples")
    mixed = build(paths, {"c": {"weight": 1}, "a": {"examples": 120}, "b": {"weight": 2}},
                  unit="examples", total=400)
    assert ids(alone, "a") == ids(mixed, "a") and len(ids(alone, "a")) == 120


def test_examples_unit_takes_exact_row_counts(tmp_path: Path) -> None:
    paths = make(tmp_path, {"a": 100, "b": 100})
    m = build(paths, {"a": {"weight": 3}, "b": {"weight": 1}}, unit="examples", total=80)
    assert m.manifest["sources"]["a"]["rows_selected"] == 60
    assert m.manifest["sources"]["b"]["rows_selected"] == 20


def test_upsampling_repeats_whole_source_then_a_ranked_remainder(tmp_path: Path) -> None:
    paths = make(tmp_path, {"a": 10})
    m = build(paths, {"a": {"examples": 25, "max_epochs": 3}}, unit="examples")
    frame = m.splits["train"]
    base = frame.get_column("id").str.replace(r"#\d+$", "")
    assert frame.height == 25 and base.n_unique() == 10
    counts = base.value_counts().get_column("count").sort().to_list()
    assert counts == [2] * 5 + [3] * 5
    assert frame.get_column("id").n_unique() == 25  # repeats carry #r ids
    assert m.manifest["sources"]["a"]["repeat_factor"] == pytest.approx(2.5)


def test_target_beyond_max_epochs_fails_naming_the_source(tmp_path: Path) -> None:
    paths = make(tmp_path, {"small": 10, "big": 500})
    with pytest.raises(DataError, match=r"(?s)source 'small' needs 50 examples \(share 50\.0%\) but has 10 "
                                        r"available; max_epochs = 1 allows at most 10.*rebalance = true"):
        build(paths, {"small": {"weight": 1}, "big": {"weight": 1}}, unit="examples", total=100)


def test_rebalance_gives_the_shortfall_to_the_other_sources(tmp_path: Path) -> None:
    paths = make(tmp_path, {"small": 10, "big": 500, "mid": 500})
    m = build(paths, {"small": {"weight": 1}, "big": {"weight": 1}, "mid": {"weight": 2}},
              unit="examples", total=100, rebalance=True)
    src = m.manifest["sources"]
    assert src["small"]["rows_selected"] == 10 and src["small"]["rebalanced"]
    assert src["big"]["rows_selected"] == 30 and src["mid"]["rows_selected"] == 60


def test_rebalance_still_fails_when_nothing_can_cover_the_total(tmp_path: Path) -> None:
    paths = make(tmp_path, {"a": 10, "b": 10})
    with pytest.raises(DataError, match="even with rebalance = true"):
        build(paths, {"a": {"weight": 1}, "b": {"weight": 1}}, unit="examples", total=100, rebalance=True)


def test_absolute_budget_beyond_cap_fails(tmp_path: Path) -> None:
    paths = make(tmp_path, {"a": 10})
    with pytest.raises(DataError, match="source 'a' needs 11 examples but has 10"):
        build(paths, {"a": {"examples": 11}}, unit="examples")


def test_temperature_flattens_shares_towards_uniform(tmp_path: Path) -> None:
    paths = make(tmp_path, {"a": 400, "b": 100})
    natural = build(paths, {"a": {}, "b": {}}, unit="examples", total=100, temperature=1.0)
    flat = build(paths, {"a": {}, "b": {}}, unit="examples", total=100, temperature=1e9)
    assert natural.manifest["sources"]["a"]["rows_selected"] == 80
    assert flat.manifest["sources"]["a"]["rows_selected"] == 50


def test_validation_rows_never_share_a_base_row_with_train(tmp_path: Path) -> None:
    paths = make(tmp_path, {"a": 200})
    m = build(paths, {"a": {"examples": 500, "max_epochs": 4}}, unit="examples", validation=0.2)
    train_base = set(m.splits["train"].get_column("id").str.replace(r"#\d+$", "").to_list())
    val = set(m.splits["validation"].get_column("id").to_list())
    assert val and not (train_base & val)
    assert not any("#" in v for v in val)


@needs_shared
def test_shares_within_a_point_on_real_hh_rlhf(tmp_path: Path) -> None:
    paths = {"hh": str(HH), **make(tmp_path, {"x": 400})}
    m = build(paths, {"hh": {"weight": 0.8}, "x": {"weight": 0.2, "max_epochs": 3}}, total=100_000)
    assert abs(m.manifest["sources"]["hh"]["realized_share"] - 0.8) <= 0.01


def test_token_target_holds_for_repeats_sized_by_their_own_augmentation() -> None:
    from mixer import mix

    frame = pl.DataFrame({"id": [f"s/{i:016x}" for i in range(20)], "n_tokens": [100] * 20},
                         schema={"id": pl.String, "n_tokens": pl.UInt32})
    calls = []

    def resize(rows: pl.DataFrame, r: int):  # each repeat draws bigger augmentations: 250 tokens a row
        calls.append(r)
        return np.full(rows.height, 250, dtype=np.uint32)

    plain = mix.select(frame, "tokens", 4000, seed=1)
    sized = mix.select(frame, "tokens", 4000, seed=1, resize=resize)
    # without sizes, selection believes 20 rows x 2 = 40 rows make 4,000 tokens; written, they would be 7,000
    assert plain.height == 40 and int(plain["n_tokens"].sum()) == 4000
    assert abs(int(sized["n_tokens"].sum()) - 4000) <= 250 and calls == [1]
    assert sized.height == 20 + 8 and sized.filter(pl.col("id").str.ends_with("#1"))["n_tokens"].to_list() == [250] * 8


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["a/1", "b/1", "a/2", "é/1", "Z/3", "a/1#2"])),
                     max_size=60))
def test_draw_order_sorts_by_draw_then_id_then_position(rows: list[tuple[int, str]]) -> None:
    """Selection and the final order sort by draw and break ties (identical content in two
    sources) by id as ``sorted`` orders strings, then by position: the contract any faster sort
    must keep."""
    from mixer.mix import _by_draw

    draws = np.array([d for d, _ in rows], dtype=np.uint64)
    ids = pl.Series([i for _, i in rows], dtype=pl.String)
    expected = sorted(range(len(rows)), key=lambda k: (rows[k][0], rows[k][1].encode("utf-8"), k))
    assert _by_draw(draws, ids).tolist() == expected


def test_row_keys_and_repeat_indices_do_not_depend_on_the_slices_they_are_parsed_in(monkeypatch) -> None:
    """Ids are parsed a slice at a time (the parse copies every id twice); the keys must be those
    of one whole parse, with ``.k`` occurrences and ``#r`` repeats anywhere in the column."""
    from mixer import rng

    ids = pl.Series([f"s{i % 3}/{i * 7919:016x}" + (f".{i % 4}" if i % 5 == 0 else "") + (f"#{i % 3}" if i % 2 else "")
                     for i in range(101)])
    whole = (rng.row_keys(ids), rng.repeat_index(ids))
    monkeypatch.setattr(rng, "_KEY_SLICE", 7)
    sliced = (rng.row_keys(ids), rng.repeat_index(ids))
    assert whole[0].tolist() == sliced[0].tolist() and whole[1].tolist() == sliced[1].tolist()
    assert len(set(whole[0].tolist())) > 90 and set(whole[1].tolist()) == {0, 1, 2}
