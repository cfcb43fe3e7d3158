"""Streaming builds (``--stream``) give byte-identical output to in-memory builds, chunk size aside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import HH, chat, chats, needs_shared, write_jsonl, write_recipe
from mixer import pipeline
from mixer.cli import main
from mixer.streaming import build_streaming


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_output(recipe: Path, tmp_path: Path, chunk_rows: int) -> dict:
    """Build ``recipe`` in memory and streaming; every written file must be identical."""
    memory = pipeline.build(recipe).write(tmp_path / "memory")
    streamed, manifest = build_streaming(recipe, tmp_path / "streamed", chunk_rows=chunk_rows)
    a, b = _files(memory), _files(streamed)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], f"{name} differs between the in-memory and the streaming build"
    assert json.loads(b["manifest.json"]) == json.loads(json.dumps(manifest, default=str))
    assert not any(p.name.startswith(".") for p in streamed.rglob("*")), "spill files left in the output"
    return json.loads(b["manifest.json"])


def test_dedup_rejects_decontamination_upsampling_and_shards_match_in_memory(tmp_path: Path) -> None:
    a = chats(40, "a") + chats(40, "a")[:6] + [chat("tell me the canary-XYZ-77 string", "no")]
    b = chats(25, "b") + chats(40, "a")[10:14]  # copies of source a's rows: a keeps them
    write_jsonl(tmp_path / "a.jsonl", a)
    write_jsonl(tmp_path / "b.jsonl", b)
    with (tmp_path / "b.jsonl").open("a") as fh:
        fh.write('{"messages": "not a list"}\n{broken json\n')
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "tokens"
total = 6000
validation = 0.1
seed = 7
[decontaminate]
canaries = ["canary-xyz-77"]
[sources.a]
path = "a.jsonl"
weight = 0.6
[[sources.a.transforms]]
type = "system_prompt"
p = 0.7
[[sources.a.transforms]]
type = "tools"
p = 0.5
count = [1, 3]
[sources.b]
path = "b.jsonl"
weight = 0.4
max_epochs = 5
on_error = "skip"
[output]
shard_rows = 17
""")
    m = assert_same_output(recipe, tmp_path, chunk_rows=6)
    a_entry, b_entry = m["sources"]["a"], m["sources"]["b"]
    assert a_entry["rows_deduplicated"] == 6 and a_entry["rows_decontaminated"] == 1
    assert b_entry["rows_deduplicated"] == 4 and b_entry["rows_rejected"] == 2
    assert b_entry["repeat_factor"] > 1 and len(m["outputs"]) > 2  # repeats and several shards were exercised
    assert a_entry["transforms"][1]["augmented_selected"] > 0


def test_trainer_format_with_tagged_contamination_and_repeats_matches_in_memory(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30) + [chat("secret canary-Q", "x")])
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 80
validation = 0.2
[decontaminate]
canaries = ["canary-q"]
action = "tag"
[sources.a]
path = "a.jsonl"
weight = 1
max_epochs = 4
[[sources.a.transforms]]
type = "system_prompt"
p = 0.5
[[sources.a.transforms]]
type = "tools"
p = 0.5
[output]
format = "trl"
shard_rows = 25
""")
    m = assert_same_output(recipe, tmp_path, chunk_rows=4)
    assert m["sources"]["a"]["rows_flagged_contaminated"] == 1
    assert m["export"]["format"] == "trl" and m["totals"]["train"]["rows"] == 80


@needs_shared
def test_real_hh_with_filter_augmentation_and_validation_matches_in_memory(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "extra.jsonl", chats(300, "extra"))
    recipe = write_recipe(tmp_path / "r.toml", f"""
unit = "examples"
total = 2000
validation = 0.05
[sources.hh]
path = "{HH}"
format = "hh-rlhf"
weight = 0.8
[[sources.hh.transforms]]
type = "filter"
min_tokens = 20
[[sources.hh.transforms]]
type = "system_prompt"
p = 0.6
[[sources.hh.transforms]]
type = "tools"
p = 0.5
count = [1, 4]
[sources.extra]
path = "extra.jsonl"
weight = 0.2
max_epochs = 3
[output]
shard_rows = 300
""")
    m = assert_same_output(recipe, tmp_path, chunk_rows=500)
    hh = m["sources"]["hh"]
    assert hh["rows_read"] == 2312 and hh["rows_filtered"] > 0 and hh["transforms"][2]["augmented_selected"] > 0
    assert m["sources"]["extra"]["repeat_factor"] > 1


def test_near_dedup_is_refused_with_a_way_out(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(5))
    recipe = write_recipe(tmp_path / "r.toml", 'total = 100\n[dedup]\nnear = true\n[sources.a]\npath = "a.jsonl"\nweight = 1\n')
    result = CliRunner().invoke(main, ["build", str(recipe), "--stream", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "dedup.near" in result.output and "without --stream" in result.output
    assert not (tmp_path / "out").exists()


def test_stream_dry_run_prints_the_table_and_writes_nothing(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30))
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 20\n[sources.a]\npath = "a.jsonl"\nweight = 1\n')
    result = CliRunner().invoke(main, ["build", str(recipe), "--stream", "--dry-run", "--chunk-rows", "7",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "20" in result.output and "dry run" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "r.toml"]


def test_strict_streaming_build_fails_with_every_reason_and_writes_nothing(tmp_path: Path) -> None:
    rows = chats(12) + [{"messages": [{"role": "user", "content": f"only a question {i}"}]} for i in range(3)]
    write_jsonl(tmp_path / "a.jsonl", rows)
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 15
[sources.a]
path = "a.jsonl"
weight = 1
[output]
format = "openai"
shard_rows = 4
""")
    result = CliRunner().invoke(main, ["build", str(recipe), "--stream", "--strict", "--chunk-rows", "5",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "3 rows cannot be written as openai" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "r.toml"]


@pytest.mark.parametrize("chunk_rows", [1, 1000])
def test_chunk_size_does_not_change_the_output(tmp_path: Path, chunk_rows: int) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(20))
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 30
[sources.a]
path = "a.jsonl"
weight = 1
max_epochs = 2
[[sources.a.transforms]]
type = "tools"
p = 1.0
""")
    assert_same_output(recipe, tmp_path, chunk_rows=chunk_rows)


def test_token_budget_with_repeats_and_validation_matches_in_memory(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30))
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "tokens"
total = 12000
validation = 0.3
[sources.a]
path = "a.jsonl"
weight = 1
max_epochs = 4
[[sources.a.transforms]]
type = "system_prompt"
p = 0.5
[[sources.a.transforms]]
type = "tools"
p = 0.7
count = [1, 4]
""")
    m = assert_same_output(recipe, tmp_path, chunk_rows=7)
    assert m["sources"]["a"]["repeat_factor"] > 1 and m["totals"]["validation"]["rows"] > 0
