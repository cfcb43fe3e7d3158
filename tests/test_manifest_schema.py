"""The manifest has one typed definition (mixer.manifest_schema), and every manifest written is
checked against it: an undeclared key, a missing key or a wrong type is caught before a user sees it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import chats, write_jsonl, write_recipe
from mixer import manifest_schema, pipeline


def built(tmp_path: Path, output: str = "") -> dict:
    write_jsonl(tmp_path / "a.jsonl", chats(60, "a"))
    write_jsonl(tmp_path / "b.jsonl", chats(40, "b") + [{"messages": [{"role": "bot", "content": "x"}]}])
    recipe = write_recipe(tmp_path / "r.toml", f"""
seed = 1
unit = "examples"
total = 50
validation = 0.1
[sources.a]
path = "a.jsonl"
weight = 0.6
[sources.b]
path = "b.jsonl"
weight = 0.4
on_error = "skip"
[[sources.b.transforms]]
type = "system_prompt"
pool = "builtin"
p = 1.0
[output]
{output}
""")
    pipeline.build_all(recipe, out=tmp_path / "out", cache=False)
    return json.loads((tmp_path / "out" / "manifest.json").read_text())


@pytest.mark.parametrize("output", ['format = "canonical"', 'format = "trl"', 'format = "llama-factory"'])
def test_written_manifests_have_the_declared_shape(tmp_path: Path, output: str) -> None:
    manifest = built(tmp_path, output)
    manifest_schema.conform(manifest)  # finish() checked it already; this says what it checked against


def test_an_undeclared_key_is_caught(tmp_path: Path) -> None:
    manifest = built(tmp_path)
    bad = copy.deepcopy(manifest)
    bad["sources"]["a"]["rows_surprising"] = 1
    with pytest.raises(AssertionError, match=r"manifest\.sources\.a: .*not declared \['rows_surprising'\]"):
        manifest_schema.conform(bad)


def test_a_missing_key_and_a_wrong_type_are_caught(tmp_path: Path) -> None:
    manifest = built(tmp_path)
    missing = copy.deepcopy(manifest)
    del missing["totals"]
    with pytest.raises(AssertionError, match=r"keys missing \['totals'\]"):
        manifest_schema.conform(missing)
    wrong = copy.deepcopy(manifest)
    wrong["sources"]["b"]["rows_read"] = "41"
    with pytest.raises(AssertionError, match=r"manifest\.sources\.b\.rows_read: expected int, got str"):
        manifest_schema.conform(wrong)
    unit = copy.deepcopy(manifest)
    unit["unit"] = "bytes"
    with pytest.raises(AssertionError, match=r"manifest\.unit: 'bytes' is not one of"):
        manifest_schema.conform(unit)


def test_a_conversion_manifest_has_its_own_declared_shape(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(5, "a"))
    _, manifest = pipeline.convert(str(tmp_path / "a.jsonl"), tmp_path / "out", "openai")
    manifest_schema.conform(json.loads((tmp_path / "out" / "manifest.json").read_text()),
                            manifest_schema.ConvertManifest)
    with pytest.raises(AssertionError):
        manifest_schema.conform(manifest)  # not a build's manifest
