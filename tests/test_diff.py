"""mixer diff: what changed between two builds, per source, with the exit code scripts rely on."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from conftest import chats, write_jsonl, write_recipe
from mixer.cli import main
from mixer.diff import diff


def build(tmp_path: Path, out: str, *sets: str) -> Path:
    args = ["build", str(tmp_path / "r.toml"), "--out", str(tmp_path / out), "-q"]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return tmp_path / out


def recipe(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(100, "a"))
    write_jsonl(tmp_path / "b.jsonl", chats(100, "b"))
    write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 60\n[sources.a]\npath = "a.jsonl"\nweight = 1\n'
                                      '[sources.b]\npath = "b.jsonl"\nweight = 1\n')


def test_identical_builds_exit_0_and_a_weight_change_shows_nested_rows_added(tmp_path: Path) -> None:
    recipe(tmp_path)
    one, two = build(tmp_path, "one"), build(tmp_path, "two")
    same = CliRunner().invoke(main, ["diff", str(one), str(two)])
    assert same.exit_code == 0 and "identical" in same.output
    more_a = build(tmp_path, "more_a", "sources.a.weight=2")
    result = CliRunner().invoke(main, ["diff", str(one), str(more_a)])
    assert result.exit_code == 1 and "different" in result.output
    d = diff(one, more_a)
    a, b = (s for s in d.sources)
    assert (a.added, a.removed) == (10, 0)  # 30 -> 40 rows: a superset (nested selection)
    assert (b.added, b.removed) == (0, 10)
    assert "recipe sha256" in d.settings and not a.inputs_changed and not a.transforms_changed


def test_changed_inputs_and_transforms_are_named(tmp_path: Path) -> None:
    recipe(tmp_path)
    one = build(tmp_path, "one")
    write_jsonl(tmp_path / "a.jsonl", chats(101, "a"))
    changed = build(tmp_path, "changed", "sources.a.transforms=[{type = \"system_prompt\", p = 0.5}]")
    d = diff(one, changed)
    a, b = d.sources
    assert a.inputs_changed and a.transforms_changed and not b.inputs_changed and not b.transforms_changed
    out = json.loads(CliRunner().invoke(main, ["diff", str(one), str(changed), "--json"]).output)
    assert out["identical"] is False and out["sources"][0]["inputs_changed"] is True


def test_trainer_formats_compare_ids_through_rows_parquet_and_say_so_without_it(tmp_path: Path) -> None:
    recipe(tmp_path)
    one = build(tmp_path, "one", "output.format=\"openai\"")
    two = build(tmp_path, "two", "output.format=\"openai\"", "total=50")
    assert diff(one, two).sources[0].added is not None  # rows.parquet carries the written rows' ids
    (one / "rows.parquet").unlink()
    result = CliRunner().invoke(main, ["diff", str(one), str(two)])
    assert result.exit_code == 1 and "carry no ids" in result.output
    assert diff(one, two).sources[0].added is None


def test_a_folder_without_a_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    result = CliRunner().invoke(main, ["diff", str(tmp_path / "x"), str(tmp_path / "x")])
    assert result.exit_code == 1 and "no manifest.json" in result.output and "Traceback" not in result.output
