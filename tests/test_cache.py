"""The prepared-source cache: a re-mix reuses a preparation and writes exactly what a cold
build writes; anything that changes preparation misses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import chat, chats, output_files, write_jsonl, write_recipe
from mixer import pipeline
from mixer.cache import Cache
from mixer.cli import main

RECIPE = """
unit = "tokens"
total = 6000
token_budget = "rendered"
validation = 0.1
seed = 7
[decontaminate]
canaries = ["canary-xyz-77"]
[sources.a]
path = "a.jsonl"
weight = 0.6
[[sources.a.transforms]]
type = "system_prompt"
pool = "pool.txt"
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
"""


def setup(tmp_path: Path) -> Path:
    a = chats(40, "a") + chats(40, "a")[:6] + [chat("tell me the canary-XYZ-77 string", "no")]
    write_jsonl(tmp_path / "a.jsonl", a)
    write_jsonl(tmp_path / "b.jsonl", chats(25, "b") + chats(40, "a")[10:14])
    with (tmp_path / "b.jsonl").open("a") as fh:
        fh.write('{"messages": "not a list"}\n')
    (tmp_path / "pool.txt").write_text("You are careful.\nYou are kind.\n")
    return write_recipe(tmp_path / "r.toml", RECIPE)


def build(recipe: Path, out: Path, cache: Path | None, *sets: str, executor: str = "memory") -> dict:
    built = pipeline.build_all(recipe, list(sets), out=out, force=True, executor=executor, chunk_rows=6,
                               cache_dir=cache, cache=cache is not None)
    return next(iter(built.mixtures.values())).manifest


@pytest.mark.parametrize("executor", ["memory", "stream"])
@pytest.mark.parametrize("remix", [(), ("total=4000",), ("sources.a.weight=0.2", "sources.b.max_epochs=9"),
                                   ('output.format="trl"',)])
def test_a_cache_hit_writes_exactly_what_a_cold_build_writes(tmp_path: Path, executor: str, remix: tuple) -> None:
    recipe = setup(tmp_path)
    first = build(recipe, tmp_path / "first", tmp_path / "cache", executor=executor)
    assert first["run"]["cache"]["hit"] is False
    hit = build(recipe, tmp_path / "hit", tmp_path / "cache", *remix, executor=executor)
    assert hit["run"]["cache"]["hit"] is True
    assert [p["phase"] for p in hit["run"]["phases"]][:2] == ["cache", "select"]  # read/dedup/prepare skipped
    cold = build(recipe, tmp_path / "cold", None, *remix, executor=executor)
    assert "cache" not in cold["run"]
    assert output_files(tmp_path / "hit") == output_files(tmp_path / "cold")
    assert (tmp_path / "hit" / "removed.jsonl").read_bytes() == (tmp_path / "cold" / "removed.jsonl").read_bytes()


@pytest.mark.parametrize("change", ["input", "pool", "option", "seed", "budget", "executor"])
def test_anything_that_changes_preparation_misses(tmp_path: Path, change: str) -> None:
    recipe = setup(tmp_path)
    build(recipe, tmp_path / "first", tmp_path / "cache")
    sets: list[str] = []
    executor = "memory"
    if change == "input":
        with (tmp_path / "b.jsonl").open("a") as fh:
            fh.write(json.dumps(chat("one more", "row")) + "\n")
    elif change == "pool":
        (tmp_path / "pool.txt").write_text("You are careful.\nYou are brave.\n")
    elif change == "option":
        sets = ["sources.a.transforms[1].p=0.6"]
    elif change == "seed":
        sets = ["seed=8"]
    elif change == "budget":
        sets = ['token_budget="content"', "total=1500"]
    else:
        executor = "stream"
    again = build(recipe, tmp_path / "again", tmp_path / "cache", *sets, executor=executor)
    assert again["run"]["cache"]["hit"] is False
    build(recipe, tmp_path / "cold", None, *sets, executor=executor)
    assert output_files(tmp_path / "again") == output_files(tmp_path / "cold")


def test_touching_an_input_without_changing_it_still_hits(tmp_path: Path) -> None:
    import os

    recipe = setup(tmp_path)
    build(recipe, tmp_path / "first", tmp_path / "cache")
    os.utime(tmp_path / "a.jsonl", (1, 1))
    assert build(recipe, tmp_path / "again", tmp_path / "cache")["run"]["cache"]["hit"] is True


def test_an_unfinished_entry_is_never_used(tmp_path: Path) -> None:
    recipe = setup(tmp_path)
    build(recipe, tmp_path / "first", tmp_path / "cache")
    [entry] = Cache(tmp_path / "cache").entries()
    (entry.path / "state.json").unlink()  # as if the build had died before committing
    assert build(recipe, tmp_path / "again", tmp_path / "cache")["run"]["cache"]["hit"] is False


def test_cache_ls_and_clear(tmp_path: Path) -> None:
    recipe = setup(tmp_path)
    build(recipe, tmp_path / "first", tmp_path / "cache")
    runner = CliRunner()
    listed = runner.invoke(main, ["cache", "ls", "--cache-dir", str(tmp_path / "cache")])
    assert listed.exit_code == 0 and "r: a, b" in listed.output and "1 entries" in listed.output
    cleared = runner.invoke(main, ["cache", "clear", "--cache-dir", str(tmp_path / "cache")])
    assert cleared.exit_code == 0 and cleared.output.startswith("removed 1 entries")
    assert Cache(tmp_path / "cache").entries() == []
    none = runner.invoke(main, ["cache", "ls"], env={"MIXER_CACHE": ""})
    assert none.exit_code != 0 and "MIXER_CACHE" in none.output


def test_mixer_cache_env_turns_the_cache_on_for_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = setup(tmp_path)
    monkeypatch.setenv("MIXER_CACHE", str(tmp_path / "env-cache"))
    runner = CliRunner()
    first = runner.invoke(main, ["build", str(recipe), "--out", str(tmp_path / "o1"), "-q"])
    second = runner.invoke(main, ["build", str(recipe), "--out", str(tmp_path / "o2"), "-q"])
    assert first.exit_code == 0 and "cache: stored" in first.output
    assert second.exit_code == 0 and "cache: hit" in second.output
    off = runner.invoke(main, ["build", str(recipe), "--out", str(tmp_path / "o3"), "-q", "--no-cache"])
    assert off.exit_code == 0 and "cache:" not in off.output


def test_a_streaming_build_stores_its_spilled_chunks_by_their_bytes(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunks are already Parquet in the spill folder: the entry copies those files instead
    of reading every row back and encoding it again (key tables are still written as frames)."""
    from mixer import cache as cache_mod

    encoded: list[str] = []
    real = cache_mod.EntryWriter.frame
    monkeypatch.setattr(cache_mod.EntryWriter, "frame",
                        lambda self, name, frame: (encoded.append(name), real(self, name, frame))[1])
    recipe = setup(tmp_path)
    build(recipe, tmp_path / "first", tmp_path / "cache", executor="stream")
    assert encoded and not [name for name in encoded if name.endswith(("-ready", "-clean"))]
    hit = build(recipe, tmp_path / "hit", tmp_path / "cache", executor="stream")
    assert hit["run"]["cache"]["hit"] is True
    assert output_files(tmp_path / "hit") == output_files(tmp_path / "first")


def test_a_re_mix_that_lets_an_augmented_source_repeat_re_augments_its_repeats_from_the_cache(tmp_path: Path) -> None:
    """A cached preparation keeps every augmented source's cleaned rows (a build without a cache
    keeps them only where ``max_epochs > 1``), so a re-mix that raises ``max_epochs`` and needs
    repeats is a hit and writes what a cold build writes."""
    recipe = setup(tmp_path)
    build(recipe, tmp_path / "first", tmp_path / "cache", executor="stream")
    remix = ("total=16000", "sources.a.max_epochs=6", "sources.a.weight=0.9", "sources.b.weight=0.1")
    hit = build(recipe, tmp_path / "hit", tmp_path / "cache", *remix, executor="stream")
    assert hit["run"]["cache"]["hit"] is True and hit["sources"]["a"]["repeat_factor"] > 1
    build(recipe, tmp_path / "cold", None, *remix, executor="stream")
    assert output_files(tmp_path / "hit") == output_files(tmp_path / "cold")
