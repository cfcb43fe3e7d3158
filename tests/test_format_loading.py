"""Loading what mixer wrote with the real ``datasets``: rebuilt folders never return stale rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest
from click.testing import CliRunner

from conftest import EXAMPLES, chats, write_jsonl
from mixer.cli import main

FORMATS = ("canonical", "trl", "openai", "prompt", "llama-factory", "torchtune", "text")


def _recipe(tmp_path: Path, fmt: str) -> Path:
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"""
unit = "examples"
total = 40
[output]
format = "{fmt if fmt != "canonical" else "parquet"}"
[sources.chats]
path = "{EXAMPLES / 'harmless_chats.jsonl'}"
weight = 1
max_epochs = 2
[[sources.chats.transforms]]
type = "tools"
p = 0.7
count = [1, 3]
""")
    return recipe


def _build(recipe: Path, out: Path, *overrides: str) -> None:
    args = ["build", str(recipe), "--out", str(out), "--force", "-q"]
    for o in overrides:
        args += ["--set", o]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


def _written(out: Path, selected: int) -> int:
    """Rows the build wrote to train (a format may reject some, e.g. torchtune's tool-call turns)."""
    manifest = json.loads((out / "manifest.json").read_text())
    rejected = (manifest.get("export") or {}).get("rejected", {}).get("train", {})
    return selected - sum(rejected.values())


def _rows(out: Path, cache: Path) -> list[dict]:
    return list(datasets.load_dataset(str(out), cache_dir=str(cache))["train"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_loading_a_folder_rebuilt_smaller_with_force_returns_the_new_rows(tmp_path: Path, fmt: str) -> None:
    recipe, out, cache = _recipe(tmp_path, fmt), tmp_path / "out", tmp_path / "cache"
    _build(recipe, out)
    first, first_written = _rows(out, cache), _written(out, 40)
    _build(recipe, out, "total=13")
    second = _rows(out, cache)
    assert len(first) == first_written and len(second) == _written(out, 13) < len(first)


@pytest.mark.parametrize("fmt", ("trl", "openai"))
def test_a_rebuild_of_the_same_size_with_other_rows_is_not_served_from_cache(tmp_path: Path, fmt: str) -> None:
    recipe, out, cache = _recipe(tmp_path, fmt), tmp_path / "out", tmp_path / "cache"
    _build(recipe, out)
    first = _rows(out, cache)
    _build(recipe, out, "seed=99")
    second = _rows(out, cache)
    assert len(first) == len(second) == 40 and first != second


def test_two_folders_of_the_same_name_never_share_cached_rows(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    write_jsonl(tmp_path / "a.jsonl", chats(30, "alpha"))
    write_jsonl(tmp_path / "b.jsonl", chats(30, "beta"))
    loaded = {}
    for name in ("a", "b"):
        recipe = tmp_path / f"{name}.toml"
        recipe.write_text(f'unit = "examples"\ntotal = 10\n[output]\nformat = "trl"\n'
                          f'[sources.s]\npath = "{name}.jsonl"\nweight = 1\n')
        _build(recipe, tmp_path / name / "out")
        loaded[name] = _rows(tmp_path / name / "out", cache)
    assert all("alpha" in r["messages"][0]["content"] for r in loaded["a"])
    assert all("beta" in r["messages"][0]["content"] for r in loaded["b"])


def test_the_card_lists_exact_files_and_their_fingerprint(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _build(_recipe(tmp_path, "trl"), out)
    card = (out / "README.md").read_text()
    assert "data/train-*" not in card and "data/train-00000-of-00001.parquet" in card
    copy = tmp_path / "copy" / "out"  # a byte-identical copy elsewhere: same fingerprint, same rows
    shutil.copytree(out, copy)
    assert (copy / "README.md").read_text() == card
