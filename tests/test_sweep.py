"""mixer sweep: many mixtures from one preparation, each exactly what ``mixer build`` would
write with the same overrides, with realised ratios for mixture fitting."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from conftest import HH, REPO, chats, needs_shared, output_files, write_jsonl, write_recipe
from mixer import pipeline, sweep
from mixer.cli import main
from mixer.errors import RecipeError
from mixer.recipe import load

BASE = """
unit = "tokens"
total = 6000
[sources.small]
path = "small.jsonl"
weight = 0.3
max_epochs = 30
[[sources.small.transforms]]
type = "system_prompt"
[[sources.small.transforms]]
type = "tools"
p = 0.5
[sources.big]
path = "big.jsonl"
weight = 0.7
"""


def toml_value(value: object) -> str:
    """A value as --set takes it (TOML)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value)


def setup(tmp_path: Path, sweep_table: str) -> Path:
    write_jsonl(tmp_path / "small.jsonl", chats(20, "s"))
    write_jsonl(tmp_path / "big.jsonl", chats(400, "b"))
    return write_recipe(tmp_path / "r.toml", BASE + sweep_table)


SWEEP = """
[sweep]
grid = {"sources.small.weight" = [0.1, 0.3], total = [3000, 6000]}
ablate = {"sources.small.transforms[1].p" = [0.0]}
drop = ["sources.small.transforms[0]"]
[sweep.swarm]
variants = 3
min_weight = 0.05
"""


def test_variants_cover_grid_ablations_drops_and_swarm(tmp_path: Path) -> None:
    recipe = setup(tmp_path, SWEEP)
    _, _, found = sweep.plan(recipe)
    assert [(v.name, v.kind) for v in found] == [
        ("base", "base"), ("grid-000", "grid"), ("grid-001", "grid"), ("grid-002", "grid"), ("grid-003", "grid"),
        ("small.t1.p=0.0", "ablate"), ("no-small-system_prompt", "drop"),
        ("swarm-000", "swarm"), ("swarm-001", "swarm"), ("swarm-002", "swarm")]
    assert found[1].overrides == {"sources.small.weight": 0.1, "total": 3000}
    assert found[6].overrides == {"sources.small.transforms": [{"type": "tools", "p": 0.5}]}
    for v in found[7:]:
        weights = [v.overrides["sources.small.weight"], v.overrides["sources.big.weight"]]
        assert abs(sum(weights) - 1) < 1e-5 and min(weights) >= 0.05
    again = sweep.plan(recipe)[2]
    assert [v.overrides for v in again] == [v.overrides for v in found]  # seeded: the same draws


def test_each_variant_is_what_mixer_build_writes_with_its_overrides(tmp_path: Path) -> None:
    recipe = setup(tmp_path, SWEEP)
    outcomes = sweep.run(recipe, tmp_path / "sw")
    assert all(o.built for o in outcomes)
    hits = [o.manifest["run"]["cache"]["hit"] for o in outcomes]
    assert hits[0] is False and sum(hits) >= 6  # preparation shared (transform changes prepare again)
    for o in outcomes:
        sets = [f"{k}={toml_value(v)}" for k, v in o.variant.overrides.items()]
        cold = tmp_path / "cold" / o.variant.name
        pipeline.build_all(recipe, sets, out=cold, cache=False)
        assert output_files(tmp_path / "sw" / o.variant.name) == output_files(cold), o.variant.name


def test_ratios_csv_holds_realised_shares_and_feeds_back_as_weights(tmp_path: Path) -> None:
    recipe = setup(tmp_path, SWEEP)
    sweep.run(recipe, tmp_path / "sw")
    rows = list(csv.DictReader((tmp_path / "sw" / "ratios.csv").open()))
    assert list(rows[0]) == ["run", "name", "index", "small", "big", "tokens", "rows"]
    for row in rows:
        manifest = json.loads((tmp_path / "sw" / row["name"] / "manifest.json").read_text())
        assert abs(float(row["small"]) + float(row["big"]) - 1) < 1e-5
        assert abs(float(row["small"]) - manifest["sources"]["small"]["realized_share"]) < 1e-6
        assert int(row["tokens"]) == manifest["totals"]["train"]["tokens"]
        assert int(row["rows"]) == manifest["totals"]["train"]["rows"]
    fed = pipeline.build_all(recipe, out=tmp_path / "fed", weights=f"{tmp_path / 'sw' / 'ratios.csv'}:swarm-001",
                             cache=False)
    small = next(iter(fed.mixtures.values())).manifest["sources"]["small"]
    swarm_row = next(r for r in rows if r["name"] == "swarm-001")
    assert abs(small["target_share"] - float(swarm_row["small"])) < 0.02


def test_a_smaller_budget_takes_a_subset_of_a_larger_ones_rows(tmp_path: Path) -> None:
    recipe = setup(tmp_path, SWEEP)
    sweep.run(recipe, tmp_path / "sw")
    ids = {name: set(pl.read_parquet(tmp_path / "sw" / name / "data" / "train-00000-of-00001.parquet")["id"])
           for name in ("grid-000", "grid-001")}  # the same weights, total 3000 and 6000
    assert ids["grid-000"] < ids["grid-001"]


def test_an_infeasible_variant_is_listed_with_its_reason_not_clipped(tmp_path: Path) -> None:
    recipe = setup(tmp_path, '\n[sweep]\nablate = {"sources.small.max_epochs" = [1.0, 30.0]}\n')
    outcomes = sweep.run(recipe, tmp_path / "sw")
    status = {o.variant.name: o.built for o in outcomes}
    assert status == {"base": True, "small.max_epochs=1.0": False, "small.max_epochs=30.0": True}
    index = json.loads((tmp_path / "sw" / "manifest.json").read_text())
    bad = index["mixtures"]["small.max_epochs=1.0"]
    assert bad["status"] == "infeasible" and "max_epochs = 1 allows at most" in bad["reason"]
    assert not (tmp_path / "sw" / "small.max_epochs=1.0").exists()
    assert "infeasible: small.max_epochs=1.0: cannot meet" in sweep.table(outcomes, ["small", "big"])
    names = [r["name"] for r in csv.DictReader((tmp_path / "sw" / "ratios.csv").open())]
    assert names == ["base", "small.max_epochs=30.0"]


@pytest.mark.parametrize("table, message", [
    ('[sweep]\ngrids = {total = [1]}\n', r"sweep.grids: unknown key"),
    ('[sweep]\ngrid = {total = 5}\n', r'sweep.grid."total": expected a non-empty list'),
    ('[sweep]\ndrop = ["sources.small.transforms[4]"]\n', r"sources.small has 2 transforms"),
    ('[sweep.swarm]\nvariants = 0\n', r"sweep.swarm.variants: expected a whole number >= 1"),
    ('[sweep.swarm]\nvariants = 2\npinned = {smal = 0.2}\n', r"'smal' is not a weighted source"),
    ('[sweep]\nablate = {"sources.small.weight" = ["lots"]}\n', r"sweep variant small.weight=lots: .*weight"),
])
def test_a_bad_sweep_table_fails_before_anything_is_built(tmp_path: Path, table: str, message: str) -> None:
    recipe = setup(tmp_path, "\n" + table)
    with pytest.raises(RecipeError, match=message):
        sweep.run(recipe, tmp_path / "sw")
    assert not (tmp_path / "sw").exists()


def test_a_sweep_recipe_still_builds_its_base_with_mixer_build(tmp_path: Path) -> None:
    recipe = setup(tmp_path, SWEEP)
    assert load(recipe).total == 6000


def test_cli_sweep_dry_run_lists_variants_and_refuses_a_foreign_folder(tmp_path: Path) -> None:
    recipe = setup(tmp_path, SWEEP)
    runner = CliRunner()
    listed = runner.invoke(main, ["sweep", str(recipe), "--out", str(tmp_path / "sw"), "--dry-run"])
    assert listed.exit_code == 0 and "no-small-system_prompt  [drop]" in listed.output
    assert "dry run: 10 variants" in listed.output and not (tmp_path / "sw").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    refused = runner.invoke(main, ["sweep", str(recipe), "--out", str(tmp_path / "mine"), "--force"])
    assert refused.exit_code == 1 and "not a mixer sweep folder" in refused.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


@needs_shared
def test_the_ablation_recipe_gives_four_augmentation_arms_over_the_same_conversations(tmp_path: Path) -> None:
    recipe = REPO / "recipes" / "harmlessness-ablation.toml"
    outcomes = sweep.run(recipe, tmp_path / "abl", [f"sources.harmless.path={HH}", "total=60000"])
    assert [o.variant.name for o in outcomes] == [
        "base", "harmless.transforms=none", "harmless.weight=0.2", "harmless.weight=0.4", "harmless.weight=0.8",
        "no-harmless-tools", "no-harmless-system_prompt"]
    assert all(o.built for o in outcomes)
    frames = {name: pl.read_parquet(tmp_path / "abl" / name / "data" / "train-00000-of-00001.parquet")
              .filter(pl.col("source") == "harmless")
              for name in ("base", "harmless.transforms=none", "no-harmless-tools", "no-harmless-system_prompt")}
    ids = {name: sorted(f["id"].to_list()) for name, f in frames.items()}
    assert len({tuple(v) for v in ids.values()}) == 1  # the same conversations in every arm
    has_tools = {name: int((f["tools"].list.len() > 0).sum()) for name, f in frames.items()}
    has_system = {name: int(f["system"].is_not_null().sum()) for name, f in frames.items()}
    assert has_tools["base"] > 0 and has_system["base"] > 0
    assert has_tools["no-harmless-tools"] == 0 and has_system["no-harmless-tools"] > 0
    assert has_tools["no-harmless-system_prompt"] > 0 and has_system["no-harmless-system_prompt"] < has_system["base"]
    assert has_tools["harmless.transforms=none"] == 0
    shares = {o.variant.name: sweep.shares_written(o.manifest)["harmless"] for o in outcomes}
    assert shares["harmless.weight=0.2"] < shares["harmless.weight=0.4"] < shares["base"] < shares["harmless.weight=0.8"]
