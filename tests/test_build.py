"""End to end: reproducible files, datasets-loadable output, honest manifest, safe writes, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from conftest import without_run, HH, REPO, chats, needs_shared, write_jsonl, write_recipe
from mixer import pipeline
from mixer.cli import main

QUICKSTART = REPO / "recipes" / "quickstart.toml"


def small_recipe(tmp_path: Path, extra: str = "") -> Path:
    write_jsonl(tmp_path / "a.jsonl", chats(120, "a"))
    write_jsonl(tmp_path / "b.jsonl", chats(80, "b"))
    return write_recipe(tmp_path / "r.toml", f"""
seed = 5
unit = "tokens"
total = 3000
validation = 0.1
{extra}
[sources.a]
path = "a.jsonl"
weight = 0.7
[sources.b]
path = "b.jsonl"
weight = 0.3
max_epochs = 2
""")


def data_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "data").iterdir())}


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_same_recipe_twice_gives_byte_identical_files(tmp_path: Path) -> None:
    recipe = small_recipe(tmp_path)
    one = pipeline.build(recipe).write(tmp_path / "one")
    two = pipeline.build(recipe).write(tmp_path / "two")
    assert data_files(one) == data_files(two)
    first, second = (json.loads((d / "manifest.json").read_text()) for d in (one, two))
    assert without_run(first) == without_run(second)
    assert [p["phase"] for p in first["run"]["phases"]] == ["read", "dedup", "prepare", "select", "order", "gather",
                                                           "export"]


def test_single_thread_build_gives_byte_identical_files(tmp_path: Path) -> None:
    recipe = small_recipe(tmp_path)
    pipeline.build(recipe).write(tmp_path / "multi")
    env = {**os.environ, "POLARS_MAX_THREADS": "1", "RAYON_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "mixer.cli", "build", str(recipe), "--out", str(tmp_path / "single"), "-q"],
                   check=True, env=env, capture_output=True)
    assert data_files(tmp_path / "multi") == data_files(tmp_path / "single")


def test_output_opens_with_load_dataset_with_expected_splits(tmp_path: Path) -> None:
    import datasets

    mixture = pipeline.build(small_recipe(tmp_path))
    out = mixture.write(tmp_path / "out")
    loaded = datasets.load_dataset(str(out))
    assert set(loaded) == {"train", "validation"}
    assert loaded["train"].num_rows == mixture.manifest["totals"]["train"]["rows"]
    assert loaded["validation"].num_rows == mixture.manifest["totals"]["validation"]["rows"] > 0
    assert loaded["train"][0]["messages"][0]["role"] == "user"


def test_jsonl_output_also_opens_with_load_dataset(tmp_path: Path) -> None:
    import datasets

    recipe = small_recipe(tmp_path, '[output]\nformat = "jsonl"')
    out = pipeline.build(recipe).write(tmp_path / "out")
    assert sorted(p.suffix for p in (out / "data").iterdir()) == [".jsonl", ".jsonl"]
    assert datasets.load_dataset(str(out))["train"].num_rows > 0


def test_manifest_accounts_for_every_row_and_file(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(50, "a"))
    with (tmp_path / "a.jsonl").open("a") as fh:
        fh.write("{broken\n")
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 30
[sources.a]
path = "a.jsonl"
weight = 1
on_error = "skip"
""")
    out = pipeline.build(recipe).write(tmp_path / "out")
    manifest = json.loads((out / "manifest.json").read_text())
    a = manifest["sources"]["a"]
    assert a["rows_read"] == 51 and a["rows_rejected"] == 1 and a["rows_available"] == 50
    assert a["inputs"][0]["sha256"] and a["inputs"][0]["bytes"] == (tmp_path / "a.jsonl").stat().st_size
    assert len(manifest["recipe"]["sha256"]) == 64 and manifest["versions"]["polars"]
    for f in manifest["outputs"]:
        import hashlib

        assert hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert rejects == [{"source": "a", "file": "a.jsonl", "line": 51,
                        "reason": rejects[0]["reason"], "raw": "{broken\n"}]


def test_existing_output_is_refused_without_force(tmp_path: Path) -> None:
    recipe = small_recipe(tmp_path)
    code, _ = run_cli("build", str(recipe), "--out", str(tmp_path / "out"))
    assert code == 0
    code, output = run_cli("build", str(recipe), "--out", str(tmp_path / "out"))
    assert code == 1 and "already exists; pass --force" in output
    code, _ = run_cli("build", str(recipe), "--out", str(tmp_path / "out"), "--force")
    assert code == 0 and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    code, output = run_cli("build", str(small_recipe(tmp_path)), "--out", str(tmp_path / "out"), "--dry-run")
    assert code == 0 and "realized" in output and "dry run" in output
    assert not (tmp_path / "out").exists()


def test_cap_violation_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    recipe = small_recipe(tmp_path)
    code, output = run_cli("build", str(recipe), "--out", str(tmp_path / "out"), "--set", "total=1e7")
    assert code == 1 and "source 'a' needs" in output and "Traceback" not in output
    assert not (tmp_path / "out").exists()


def test_bad_recipe_exits_2_with_the_key(tmp_path: Path) -> None:
    code, output = run_cli("build", str(small_recipe(tmp_path)), "--set", "sources.a.weigth=1")
    assert code == 2 and "sources.a.weigth: unknown key (did you mean 'weight'?)" in output


def test_missing_recipe_exits_2(tmp_path: Path) -> None:
    code, output = run_cli("build", str(tmp_path / "nope.toml"))
    assert code == 2 and "recipe file not found" in output


def test_validate_checks_paths_without_building(tmp_path: Path) -> None:
    recipe = small_recipe(tmp_path)
    assert run_cli("validate", str(recipe))[0] == 0
    code, output = run_cli("validate", str(recipe), "--set", f"sources.a.path={tmp_path / 'gone.jsonl'}")
    assert code == 1 and "gone.jsonl does not exist" in output


def test_output_inside_an_input_folder_is_refused(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in" / "a.jsonl", chats(20))
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 5\n[sources.a]\npath = "in"\nweight = 1\n')
    code, output = run_cli("build", str(recipe), "--out", str(tmp_path / "in"), "--force")
    assert code == 1 and "contains an input" in output
    assert (tmp_path / "in" / "a.jsonl").exists()


def test_library_build_hands_a_datasetdict_to_training_code(tmp_path: Path) -> None:
    mixture = pipeline.build(small_recipe(tmp_path), overrides={"total": 1500})
    ds = mixture.to_datasets()
    assert ds["train"].num_rows == mixture.to_polars()["train"].height
    assert mixture.manifest["total"] == 1500


def test_quickstart_builds_and_prints_the_table(tmp_path: Path) -> None:
    code, output = run_cli("build", str(QUICKSTART), "--out", str(tmp_path / "q"))
    assert code == 0, output
    for name in ("harmless", "advice", "documents", "realized", "epochs"):
        assert name in output
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert {e["format"] for e in manifest["sources"].values()} == {"openai", "sharegpt", "document"}
    assert all(e["rows_rejected"] == 0 for e in manifest["sources"].values())


@needs_shared
def test_real_hh_rlhf_builds_with_every_row_accounted(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "r.toml", f"""
total = 150000
validation = 0.02
[sources.hh]
path = "{HH}"
weight = 1
""")
    m = pipeline.build(recipe)
    hh = m.manifest["sources"]["hh"]
    assert hh["rows_read"] == 2312 == hh["rows_available"] == hh["split"]["train"] + hh["split"]["validation"]
    # three transcripts whose only answer is empty are named, not silently kept as SFT rows
    assert hh["repairs"] == {"merged consecutive turns": 8, "removed empty final turn": 4,
                             "no assistant turn (kept as a prompt-only row)": 3}


DIVERSIFIED = REPO / "recipes" / "harmlessness-diversified.toml"


@needs_shared
def test_diversified_recipe_builds_on_real_hh_rlhf_with_augmentation_counted(tmp_path: Path) -> None:
    code, output = run_cli("build", str(DIVERSIFIED), "--out", str(tmp_path / "out"),
                           "--set", f"sources.harmless.path={HH}", "--set", "total=300000")
    assert code == 0, output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    steps = manifest["sources"]["harmless"]["transforms"]
    assert [s["type"] for s in steps] == ["system_prompt", "tools"]
    assert all(0 < s["augmented_selected"] <= manifest["sources"]["harmless"]["rows_selected"] for s in steps)
    assert manifest["pools"]["builtin_sha256"]


def test_repeats_in_a_build_carry_fresh_augmentations(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(40))
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 120
token_budget = "rendered"
[sources.a]
path = "a.jsonl"
weight = 1
max_epochs = 3
[[sources.a.transforms]]
type = "system_prompt"
[[sources.a.transforms]]
type = "tools"
p = 1.0
count = [2, 4]
""")
    train = pipeline.build(recipe).splits["train"]
    first = train.filter(~pl.col("id").str.contains("#")).sort("id")
    second = train.filter(pl.col("id").str.ends_with("#1")).with_columns(pl.col("id").str.replace("#1", "")).sort("id")
    assert first.height == second.height == 40
    assert first.get_column("messages").equals(second.get_column("messages"))
    assert (first.get_column("system") != second.get_column("system")).sum() > 20
    assert (first.get_column("n_tokens") != second.get_column("n_tokens")).sum() > 0  # counted per copy


def test_filter_transform_rows_are_counted_as_filtered(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(100))
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 20
[sources.a]
path = "a.jsonl"
weight = 1
[[sources.a.transforms]]
type = "filter"
exclude = "question 1"
""")
    a = pipeline.build(recipe).manifest["sources"]["a"]
    assert a["rows_filtered"] == 11 and a["filtered_by"] == {"0:filter": 11}
    assert a["rows_read"] == a["rows_rejected"] + a["rows_filtered"] + a["rows_available"]


@needs_shared
def test_preview_shows_before_and_after(tmp_path: Path) -> None:
    code, output = run_cli("preview", str(DIVERSIFIED), "--source", "harmless", "-n", "4",
                           "--set", f"sources.harmless.path={HH}")
    assert code == 0, output
    assert output.count("── harmless/") == 4 and "turns (unchanged)" in output and "applied:" in output


def test_pools_command_lists_and_shows(tmp_path: Path) -> None:
    code, output = run_cli("pools")
    assert code == 0 and "system_prompts" in output and "tool specs across 20 domains" in output
    code, output = run_cli("pools", "show", "tools", "-n", "2")
    assert code == 0 and output.count("parameters:") == 2


def test_the_screen_names_every_row_removed_before_selection_and_the_file_that_lists_it(tmp_path: Path) -> None:
    """The table's ``available`` is after rows that never reached selection: one line counts them
    per reason and source, as the manifest does, and names the file that lists them."""
    rows = chats(30) + chats(30)[:4]
    write_jsonl(tmp_path / "a.jsonl", rows)
    with (tmp_path / "a.jsonl").open("a") as fh:
        fh.write('{"messages": "not a list"}\n')
    write_jsonl(tmp_path / "b.jsonl", chats(12, "b"))
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 20
[sources.a]
path = "a.jsonl"
weight = 1
on_error = "skip"
[sources.b]
path = "b.jsonl"
weight = 1
""")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("removed before selection:"))
    assert line == "removed before selection: 1 unreadable (a: 1; rejects.jsonl); 4 deduplicated (a: 4; removed.jsonl)"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"]["a"]["rows_deduplicated"] == 4 and manifest["sources"]["a"]["rows_rejected"] == 1
    assert len((out / "removed.jsonl").read_text().splitlines()) == 4
    assert len((out / "rejects.jsonl").read_text().splitlines()) == 1
