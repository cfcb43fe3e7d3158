"""Built-in pools are well-formed; user pools and real catalogs load; templates are safe."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from conftest import TOOL_SPECS, needs_shared
from mixer.errors import RecipeError
from mixer.pools import builtin_records
from mixer.pools.catalog import generated_entries, load_catalog
from mixer.pools.prompts import load_bank
from mixer.pools.templates import SLOTS, faker, fill, slots


def test_builtin_tools_are_many_valid_json_schemas_across_domains() -> None:
    records = builtin_records("tools")
    assert len(records) >= 150 and len({r["domain"] for r in records}) >= 15
    names = [r["function"]["name"] for r in records]
    assert len(set(names)) == len(names)
    for r in records:
        params = r["function"]["parameters"]
        jsonschema.Draft7Validator.check_schema(params)
        assert params["type"] == "object" and r["function"]["description"]
        assert set(params.get("required", [])) <= set(params["properties"])


def test_builtin_system_prompts_are_varied_and_use_only_allowed_slots() -> None:
    records = builtin_records("system_prompts")
    assert len(records) >= 60 and len({r["style"] for r in records}) >= 8
    assert sum(r["text"].startswith("You are") for r in records) <= len(records) / 2
    for r in records:
        assert "{" not in fill(r["text"], faker("en_US", 0)), r["id"]  # every brace was a slot


def test_generated_tools_are_valid_unique_and_deterministic() -> None:
    one, two = generated_entries(200, seed=3), generated_entries(200, seed=3)
    assert one == two and generated_entries(200, seed=4) != one
    names = [name for _, name, _, _ in one]
    assert len(set(names)) == 200
    for _, _, spec, _ in one:
        jsonschema.Draft7Validator.check_schema(json.loads(spec)["function"]["parameters"])


@pytest.mark.parametrize("template", ["{0.__class__}", "{company.__init__}", "{city!r}", "{date:%Y}",
                                      "{__import__('os')}", "{company[0]}", "{unknown_slot}"])
def test_template_tricks_are_left_literal(template: str) -> None:
    assert fill(f"Hi {template} there", faker("en_US", 1)) == f"Hi {template} there"


def test_allowed_slots_are_filled_deterministically() -> None:
    text = "At {company} in {city}, {person} on {date}"
    assert slots(text) == ["company", "city", "person", "date"]
    a, b = fill(text, faker("en_US", 7)), fill(text, faker("en_US", 7))
    assert a == b and "{" not in a and a != fill(text, faker("en_US", 8))
    assert set(SLOTS) >= {"company", "person", "city", "date", "job", "product"}


def test_unknown_locale_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="unknown Faker locale 'xx_XX'"):
        faker("xx_XX", 0)


def test_prompt_pools_from_txt_jsonl_and_csv_mix_by_weight(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first prompt\n\nsecond prompt at {company}\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "x", "system_prompt": "from jsonl"}) + "\n")
    (tmp_path / "c.csv").write_text("act,prompt\nCritic,from csv\n")
    bank = load_bank(["a.txt", {"path": "b.jsonl", "weight": 2}, {"path": "c.csv", "column": "prompt"}],
                     seed=0, position=0, variants=4, base_dir=tmp_path)
    assert "from jsonl" in bank.texts and "from csv" in bank.texts and "first prompt" in bank.texts
    assert bank.probs[bank.texts.index("from jsonl")] == pytest.approx(0.5)
    assert sum("{company}" not in t and t.startswith("second prompt at ") for t in bank.texts) == 4


def test_missing_pool_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="pool file .*nope.txt does not exist"):
        load_bank("nope.txt", seed=0, position=0, base_dir=tmp_path)


def test_catalog_accepts_wrapped_and_bare_specs(tmp_path: Path) -> None:
    bare = {"name": "lookup", "description": "d", "parameters": {"type": "object", "properties": {}}}
    wrapped = {"type": "function", "function": {**bare, "name": "lookup2"}}
    (tmp_path / "t.jsonl").write_text(json.dumps(bare) + "\n" + json.dumps(wrapped) + "\n")
    (tmp_path / "t.json").write_text(json.dumps([bare]))
    cat = load_catalog(["t.jsonl", "t.json"], seed=0, base_dir=tmp_path)
    assert cat.names == ["lookup", "lookup2", "lookup"]
    assert all(json.loads(s)["type"] == "function" for s in cat.specs)


@needs_shared
def test_real_tool_catalogs_load() -> None:
    cat = load_catalog([str(TOOL_SPECS / "bfcl_tools.jsonl.gz"), str(TOOL_SPECS / "seal_tools.jsonl.gz")], seed=0)
    assert len(cat) == 3526 + 4076
    assert cat.ids[0].startswith("bfcl_tools.jsonl.gz:bfcl-")
